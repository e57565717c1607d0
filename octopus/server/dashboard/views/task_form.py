"""The create form: pick a plugin and action, fill the fields of its signature, submit.

The submission goes through the API's own model (``TaskCreate``) and route (``create_task``),
so the dashboard accepts and refuses exactly what the API does; errors show beside the fields.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from octopus.core.audit import DASHBOARD
from octopus.core.enums import Ownership, TaskType
from octopus.core.models import ActionSpec, Plugin
from octopus.errors import NotFound, OctopusError, ValidationFailed
from octopus.schemas.common import MAX_ID
from octopus.schemas.tasks import TaskCreate
from octopus.server.dashboard.deps import CurrentSession, Form, State
from octopus.server.dashboard.forms import clone_values, param_fields, task_body
from octopus.server.dashboard.render import page, redirect
from octopus.server.dashboard.session import Session
from octopus.server.errors import validation_details
from octopus.server.routes import tasks as task_routes
from octopus.server.state import ServerState

router = APIRouter(include_in_schema=False)

Name = Annotated[str | None, Query(max_length=128)]


def _choose(
    plugins: list[Plugin], plugin: str | None, action: str | None
) -> tuple[Plugin | None, ActionSpec | None]:
    chosen = next((p for p in plugins if p.name == plugin), plugins[0] if plugins else None)
    if chosen is None:
        return None, None
    actions = chosen.actions
    picked = next((a for a in actions if a.name == action), actions[0] if actions else None)
    return chosen, picked


def _form_page(
    request: Request,
    session: Session,
    state: ServerState,
    *,
    plugin: str | None,
    action: str | None,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> HTMLResponse:
    plugins = state.store.list_plugins()
    chosen, picked = _choose(plugins, plugin, action)
    values = {"type": TaskType.ADHOC.value, "ownership": Ownership.ANYONE.value, **values}
    return page(
        request,
        "task_form.html",
        session,
        status_code=status_code,
        plugins=plugins,
        plugin=chosen,
        action=picked,
        fields=param_fields(picked, values) if picked else [],
        values=values,
        errors=errors,
        types=list(TaskType),
        ownerships=list(Ownership),
        agents=[a.name for a in state.store.list_agents()],
    )


@router.get("/tasks/new")
def new_task(
    request: Request,
    session: CurrentSession,
    state: State,
    plugin: Name = None,
    action: Name = None,
    clone: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    """The form; ``clone`` fills it from an existing task."""
    values: dict[str, str] = {}
    if clone is not None:
        spec = state.store.get_task(clone).spec
        plugin, action = spec.plugin, spec.action
        _, picked = _choose(state.store.list_plugins(), plugin, action)
        values = clone_values(spec, picked if picked and picked.name == action else None)
    return _form_page(
        request, session, state, plugin=plugin, action=action, values=values, errors={}
    )


def _form_field(field: str) -> str:
    head = field.split(".", 1)[0]
    return "params" if head in ("args", "kwargs") else head


async def _submit(body: dict[str, object], state: ServerState) -> tuple[int | None, dict[str, str]]:
    try:
        model = TaskCreate.model_validate(body)
    except ValidationError as error:
        details = validation_details(error.errors())
        return None, {_form_field(d.field or "form"): d.message for d in reversed(details)}
    try:
        created = await task_routes.create_task(model, state, DASHBOARD)
    except ValidationFailed as error:
        return None, {_form_field(error.field): error.problem}
    except OctopusError as error:
        return None, {"form": error.message}
    return created.id, {}


@router.post("/tasks/new")
async def create_task(request: Request, form: Form, state: State) -> Response:
    """Create the task through the API's route; show the form again with errors in place."""
    plugin, action = form.fields.get("plugin", ""), form.fields.get("action", "")
    chosen, picked = _choose(state.store.list_plugins(), plugin, action)
    if chosen is None or picked is None or (chosen.name, picked.name) != (plugin, action):
        errors = {"form": str(NotFound("action", f"{plugin}.{action}"))}
    else:
        fields = param_fields(picked, form.fields)
        body, errors = task_body(plugin, action, fields, form.fields)
        if not errors:
            task_id, errors = await _submit(body, state)
            if task_id is not None:
                return redirect(f"/tasks/{task_id}")
    return _form_page(
        request,
        form.session,
        state,
        plugin=plugin,
        action=action,
        values=form.fields,
        errors=errors,
        status_code=422,
    )
