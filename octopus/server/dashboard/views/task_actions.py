"""Task buttons: cancel, pause, resume, run now and delete, each a CSRF-checked POST."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path
from fastapi.responses import Response

from octopus.core.audit import DASHBOARD
from octopus.errors import OctopusError
from octopus.server.dashboard.actions import BY_NAME
from octopus.server.dashboard.deps import Form, State
from octopus.server.dashboard.render import redirect
from octopus.server.routes.tasks import TaskId

router = APIRouter(include_in_schema=False)

ActionName = Annotated[str, Path(pattern=r"^[a-z]{1,20}$")]


@router.post("/tasks/{task_id}/{action}")
async def task_action(task_id: TaskId, action: ActionName, form: Form, state: State) -> Response:
    """Do ``action`` through the API's route; a refusal is shown on the task page."""
    chosen = BY_NAME.get(action)
    perform = chosen.perform if chosen is not None else None
    if perform is None:
        return redirect(f"/tasks/{task_id}?error={quote(f'unknown action {action}')}")
    try:
        await perform(task_id, state, DASHBOARD)
    except OctopusError as error:
        return redirect(f"/tasks/{task_id}?error={quote(error.message)}")
    return redirect("/tasks" if action == "delete" else f"/tasks/{task_id}")
