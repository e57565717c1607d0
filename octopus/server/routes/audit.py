"""The audit log: who did what, newest first, filtered by action, actor, subject and time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from octopus.core.audit import ACTOR_PATTERN, SUBJECT_PATTERN, AuditAction, AuditEntry, AuditFilter
from octopus.schemas.audit import AuditEntryRead
from octopus.schemas.common import MAX_ID, AwareDatetime, Page
from octopus.server.auth import Admin, State

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], dependencies=[Admin])


ActionQuery = Annotated[AuditAction | None, Query(description="Only entries of this action.")]
ActorQuery = Annotated[
    str | None,
    Query(
        max_length=160,
        pattern=ACTOR_PATTERN.pattern,
        description="Only entries by this actor: `admin`, `dashboard`, `anonymous`, `server` or "
        "`agent:NAME`.",
    ),
]
SubjectQuery = Annotated[
    str | None,
    Query(
        max_length=160,
        pattern=SUBJECT_PATTERN.pattern,
        description="Only entries about this subject: `task:42`, `agent:web-1`, `join_token`…",
    ),
]
SinceQuery = Annotated[
    AwareDatetime | None,
    Query(description="Only entries at or after this time (ISO 8601 with an offset)."),
]


def _read(entry: AuditEntry) -> AuditEntryRead:
    return AuditEntryRead.model_validate(entry)


@router.get("")
async def list_audit(
    state: State,
    action: ActionQuery = None,
    actor: ActorQuery = None,
    subject: SubjectQuery = None,
    since: SinceQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Page[AuditEntryRead]:
    """Audit entries, newest first: tasks created, edited, paused, resumed, run now, cancelled
    and deleted; agents enrolled, drained, resumed and revoked; dashboard logins (failed ones
    too) and logouts; join token rotations; history pruned. Never a token or secret."""
    wanted = AuditFilter(action=action, actor=actor, subject=subject, since=since)
    entries, total = await run_in_threadpool(
        state.store.list_audit, wanted, limit=limit, offset=offset
    )
    return Page[AuditEntryRead](
        items=[_read(e) for e in entries], total=total, limit=limit, offset=offset
    )
