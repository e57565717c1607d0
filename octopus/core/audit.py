"""The audit log's words: what was done (one enum), who did it (actors) and to what (subjects)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from octopus.core.models import JSON


class AuditAction(StrEnum):
    """What an audit entry records; the only spelling of each action."""

    TASK_CREATED = "task.created"
    TASK_EDITED = "task.edited"
    TASK_PAUSED = "task.paused"
    TASK_RESUMED = "task.resumed"
    TASK_RUN_NOW = "task.run_now"
    TASK_CANCELLED = "task.cancelled"
    TASK_DELETED = "task.deleted"
    AGENT_ENROLLED = "agent.enrolled"
    AGENT_DRAINED = "agent.drained"
    AGENT_RESUMED = "agent.resumed"
    AGENT_REVOKED = "agent.revoked"
    LOGIN = "dashboard.login"
    LOGIN_FAILED = "dashboard.login_failed"
    LOGOUT = "dashboard.logout"
    JOIN_TOKEN_ROTATED = "join_token.rotated"
    HISTORY_PRUNED = "history.pruned"


ADMIN = "admin"
"""The admin token, through the API or the CLI."""
DASHBOARD = "dashboard"
"""A logged-in dashboard session (which holds no name of its own: it logged in as the admin)."""
ANONYMOUS = "anonymous"
"""Someone who failed to prove who they are (a failed login)."""
SERVER = "server"
"""The server itself, for what its background loops do (pruning history)."""

DASHBOARD_SUBJECT = "dashboard"
JOIN_TOKEN_SUBJECT = "join_token"
HISTORY_SUBJECT = "history"

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
ACTOR_PATTERN = re.compile(rf"^(admin|dashboard|anonymous|server|agent:{_NAME})$")
"""Every actor an entry can name."""
SUBJECT_PATTERN = re.compile(rf"^(task:[1-9][0-9]{{0,18}}|agent:{_NAME}|[a-z_]{{1,32}})$")
"""Every subject an entry can name: ``task:42``, ``agent:web-1``, or a word (``join_token``)."""


def agent_actor(name: str) -> str:
    """The actor of something an agent did itself: ``agent:NAME``."""
    return f"agent:{name}"


def task_subject(task_id: int) -> str:
    """The subject naming a task: ``task:42``."""
    return f"task:{task_id}"


def agent_subject(name: str) -> str:
    """The subject naming an agent: ``agent:web-1``."""
    return f"agent:{name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditNote:
    """An entry to record: who did what to which subject, and a small JSON detail.

    The detail never holds a token, a secret or a task's arguments (which may carry secrets).
    """

    actor: str
    action: AuditAction
    subject: str
    detail: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """A recorded audit entry."""

    id: int
    at: datetime
    actor: str
    action: AuditAction
    subject: str
    detail: dict[str, JSON]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter:
    """What an audit query is narrowed to; every field left None matches anything."""

    action: AuditAction | None = None
    actor: str | None = None
    subject: str | None = None
    since: datetime | None = None
