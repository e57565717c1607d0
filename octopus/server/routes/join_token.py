"""The join token: when it expires, and rotating it (the new one is shown once)."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from octopus.errors import NotFound
from octopus.schemas.audit import JoinTokenInfo, JoinTokenRead, JoinTokenRotate
from octopus.server.auth import Admin, AdminActor, State
from octopus.server.clock import utcnow
from octopus.server.secrets import hash_token, new_token, save_join_token

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/join-token", tags=["join token"], dependencies=[Admin])


@router.get("")
async def get_join_token(state: State) -> JoinTokenInfo:
    """When the join token in force was made and when it expires; never the token itself
    (the server keeps only its hash). 404 if there is none."""
    current = await run_in_threadpool(state.store.current_join_token)
    if current is None:
        raise NotFound("join token", "in force")
    expired = current.expires_at is not None and current.expires_at <= utcnow()
    return JoinTokenInfo(
        created_at=current.created_at, expires_at=current.expires_at, expired=expired
    )


@router.post("/rotate", status_code=201)
async def rotate_join_token(
    state: State, actor: AdminActor, body: JoinTokenRotate | None = None
) -> JoinTokenRead:
    """Replace the join token: the old one stops working at once (agents already enrolled keep
    their own tokens). With `expires_in_seconds`, the new one is refused after that long with a
    401 saying it expired. The new token is in this answer only: the server keeps its hash,
    and this server also saves it in `<data-dir>/join.token` (mode 0600).
    """
    now = utcnow()
    seconds = body.expires_in_seconds if body is not None else None
    expires_at = now + timedelta(seconds=seconds) if seconds is not None else None
    token = new_token()
    stored = await run_in_threadpool(
        state.store.rotate_join_token,
        hash_token(token),
        now=now,
        expires_at=expires_at,
        actor=actor,
    )
    path = await run_in_threadpool(save_join_token, state.settings.data_dir, token)
    logger.info("Join token rotated (expires: %s); saved in %s", expires_at or "never", path)
    return JoinTokenRead(join_token=token, created_at=stored.created_at, expires_at=expires_at)
