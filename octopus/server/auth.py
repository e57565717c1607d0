"""Who is calling: the admin, a new agent with the join token, or an enrolled agent."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from octopus.core.audit import ADMIN
from octopus.core.models import Agent
from octopus.errors import AuthError, Forbidden, RateLimited
from octopus.server.clock import utcnow
from octopus.server.secrets import hash_token, same_token
from octopus.server.state import ServerState, get_state
from octopus.store.base import Store

_bearer = HTTPBearer(auto_error=False, description="The admin token, or an agent's own token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
State = Annotated[ServerState, Depends(get_state)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise AuthError("missing bearer token")
    return credentials.credentials


async def require_admin(credentials: Credentials, state: State) -> str:
    """Allow only the admin token; the caller is the ``admin`` actor of the audit log."""
    if not same_token(_token(credentials), state.tokens.admin):
        raise AuthError("invalid admin token")
    return ADMIN


def _check_join_token(store: Store, token: str) -> None:
    found = store.join_token_for(hash_token(token))
    if found is None or found.replaced_at is not None:
        raise AuthError("invalid join token")
    if found.expires_at is not None and found.expires_at <= utcnow():
        when = found.expires_at.isoformat(timespec="seconds")
        raise AuthError(f"the join token expired at {when}; ask the admin for a new one")


async def require_join_token(request: Request, credentials: Credentials, state: State) -> None:
    """Allow only the current, unexpired join token (enrollment). A client address with too
    many failures is refused (429) for a while, whatever it sends."""
    client = request.client.host if request.client else "unknown"
    limiter = state.enrollments
    if limiter.blocked(client):
        wait = limiter.retry_after(client)
        raise RateLimited(f"too many failed enrollments; try again in {wait} s", retry_after=wait)
    try:
        await run_in_threadpool(_check_join_token, state.store, _token(credentials))
    except AuthError:
        limiter.failed(client)
        raise


async def _agent_for(credentials: Credentials, state: ServerState) -> Agent:
    token_hash = hash_token(_token(credentials))
    # Remembered tokens answer without a thread hop; only a first sight reads the store.
    agent = state.store.remembered_agent(token_hash)
    if agent is None:
        agent = await run_in_threadpool(state.store.agent_for_token, token_hash)
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
AdminActor = Annotated[str, Depends(require_admin)]
"""Who made an admin call, for the audit log (the dashboard passes its own actor)."""
AgentIdentity = Annotated[Agent, Depends(require_agent)]
AnyAgent = Annotated[Agent, Depends(require_any_agent)]
