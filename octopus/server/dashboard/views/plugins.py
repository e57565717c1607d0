"""Plugins: sha256, actions with signatures and docstrings, and which agents hold which version."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from octopus.core.models import ActionSpec
from octopus.server.dashboard.deps import CurrentSession, State
from octopus.server.dashboard.render import page

router = APIRouter(include_in_schema=False)

_PREFIX = {"var_positional": "*", "var_keyword": "**"}


def signature(action: ActionSpec) -> str:
    """``name(a: float, b: float = 1) -> float`` as written in the plugin."""
    params = []
    for param in action.params:
        text = _PREFIX.get(param.kind, "") + param.name
        text += f": {param.annotation}" if param.annotation else ""
        text += f" = {param.default}" if param.default is not None else ""
        params.append(text)
    returns = f" -> {action.returns}" if action.returns else ""
    return f"{action.name}({', '.join(params)}){returns}"


@router.get("/plugins")
def plugins_page(request: Request, session: CurrentSession, state: State) -> HTMLResponse:
    """Every plugin and which agents hold which of its versions."""
    holders: dict[tuple[str, str], list[str]] = defaultdict(list)
    for agent in state.store.list_agents():
        for name, sha in agent.facts.plugin_versions.items():
            holders[(name, sha)].append(agent.name)
    return page(
        request,
        "plugins.html",
        session,
        topics="agents",
        plugins=state.store.list_plugins(),
        holders=dict(holders),
        signature=signature,
    )
