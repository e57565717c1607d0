"""Agents as operators see them: list, show, drain, resume, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from octopus.schemas.agents import AgentRead
from octopus.schemas.common import NAME_PATTERN, Page
from octopus.server.auth import Admin, AdminActor, State
from octopus.server.clock import utcnow
from octopus.server.present import agent_read
from octopus.store.base import Wake

router = APIRouter(prefix="/api/v1/agents", tags=["agents"], dependencies=[Admin])

AgentNamePath = Annotated[str, Path(pattern=NAME_PATTERN.pattern, description="The agent's name.")]


@router.get("")
def list_agents(state: State) -> Page[AgentRead]:
    """Every enrolled agent, by name, with status, labels, load and running executions."""
    agents = [agent_read(a) for a in state.store.list_agents()]
    return Page[AgentRead](items=agents, total=len(agents), limit=len(agents), offset=0)


@router.get("/{name}")
def get_agent(name: AgentNamePath, state: State) -> AgentRead:
    """One agent."""
    return agent_read(state.store.get_agent(name))


@router.post("/{name}/drain")
async def drain_agent(name: AgentNamePath, state: State, actor: AdminActor) -> AgentRead:
    """Stop giving the agent new work; its running executions finish."""
    agent = await run_in_threadpool(state.store.set_draining, name, True, now=utcnow(), actor=actor)
    state.notifier.wake(Wake(agents=frozenset({name})))
    return agent_read(agent)


@router.post("/{name}/resume")
async def resume_agent(name: AgentNamePath, state: State, actor: AdminActor) -> AgentRead:
    """Give a drained agent work again."""
    agent = await run_in_threadpool(
        state.store.set_draining, name, False, now=utcnow(), actor=actor
    )
    state.notifier.wake(Wake(agents=frozenset({name})))
    return agent_read(agent)


@router.post("/{name}/revoke")
def revoke_agent(name: AgentNamePath, state: State, actor: AdminActor) -> AgentRead:
    """Revoke the agent's token at once; it must enroll again to come back."""
    return agent_read(state.store.revoke_agent(name, now=utcnow(), actor=actor))
