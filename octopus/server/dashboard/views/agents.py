"""Agents: status, labels, load, running executions, plugin versions; drain and resume."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from octopus.core.audit import DASHBOARD
from octopus.core.enums import AgentStatus
from octopus.server.clock import utcnow
from octopus.server.dashboard.deps import CurrentSession, Form, State
from octopus.server.dashboard.render import page, redirect
from octopus.server.routes import agents as agent_routes
from octopus.server.routes.agents import AgentNamePath

router = APIRouter(include_in_schema=False)


@router.get("/agents")
def agents_page(request: Request, session: CurrentSession, state: State) -> HTMLResponse:
    """Every agent, with its plugin versions checked against the server's."""
    current = {plugin.name: plugin.sha256 for plugin in state.store.list_plugins()}
    return page(
        request,
        "agents.html",
        session,
        topics="agents",
        agents=state.store.list_agents(),
        current=current,
        draining=AgentStatus.DRAINING,
        now=utcnow(),
    )


@router.post("/agents/{name}/drain")
async def drain(name: AgentNamePath, form: Form, state: State) -> Response:
    """Stop giving the agent new work (through the API's own route)."""
    await agent_routes.drain_agent(name, state, DASHBOARD)
    return redirect("/agents")


@router.post("/agents/{name}/resume")
async def resume(name: AgentNamePath, form: Form, state: State) -> Response:
    """Give a drained agent work again (through the API's own route)."""
    await agent_routes.resume_agent(name, state, DASHBOARD)
    return redirect("/agents")
