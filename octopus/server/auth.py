"""Who is calling: the admin, a new agent with the join token, or an enrolled agent."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from octopus.core.models import Agent
from octopus.errors import AuthError, Forbidden
from octopus.server.secrets import hash_token, same_token
from octopus.server.state import ServerState, get_state

_bearer = HTTPBearer(auto_error=False, description="The admin token, or an agent's own token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
State = Annotated[ServerState, Depends(get_state)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise AuthError("missing bearer token")
    return credentials.credentials


def require_admin(credentials: Credentials, state: State) -> None:
    """Allow only the admin token."""
    if not same_token(_token(credentials), state.tokens.admin):
        raise AuthError("invalid admin token")


def require_join_token(credentials: Credentials, state: State) -> None:
    """Allow only the join token (enrollment)."""
    if not same_token(_token(credentials), state.tokens.join):
        raise AuthError("invalid join token")


async def _agent_for(credentials: Credentials, state: ServerState) -> Agent:
    token = _token(credentials)
    agent = await run_in_threadpool(state.store.agent_for_token, hash_token(token))
    if agent is None:
        raise AuthError("unknown or revoked agent token")
    return agent


async def require_agent(name: str, credentials: Credentials, state: State) -> Agent:
    """Allow only the agent named in the path, with its own token."""
    agent = await _agent_for(credentials, state)
    if agent.name != name:
        raise Forbidden(f"this token belongs to agent {agent.name}, not {name}")
    return agent


async def require_any_agent(credentials: Credentials, state: State) -> Agent:
    """Allow any enrolled agent with its own token."""
    return await _agent_for(credentials, state)


async def require_admin_or_agent(request: Request, credentials: Credentials, state: State) -> None:
    """Allow the admin token or any enrolled agent's token."""
    if credentials is not None and same_token(credentials.credentials, state.tokens.admin):
        return
    await _agent_for(credentials, state)


Admin = Depends(require_admin)
AgentIdentity = Annotated[Agent, Depends(require_agent)]
AnyAgent = Annotated[Agent, Depends(require_any_agent)]
