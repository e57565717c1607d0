"""Wire models for the audit log and the join token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from octopus.core.audit import AuditAction
from octopus.schemas.common import Inbound, Outbound

MAX_EXPIRY_SECONDS = 10 * 365 * 24 * 3600
"""The longest expiry a join token can be given (ten years)."""


class AuditEntryRead(Outbound):
    """Who did what, to what, when; the detail never holds a token or secret."""

    id: int
    at: datetime
    actor: str = Field(description="`admin`, `dashboard`, `anonymous`, `server` or `agent:NAME`.")
    action: AuditAction
    subject: str = Field(description="What was acted on: `task:42`, `agent:web-1`, `join_token`…")
    detail: dict[str, Any]


class JoinTokenRotate(Inbound):
    """Options of a join token rotation."""

    expires_in_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EXPIRY_SECONDS,
        description="The new token stops working this many seconds from now (default: never).",
    )


class JoinTokenRead(Outbound):
    """A new join token, shown once: only its hash is kept."""

    join_token: str
    created_at: datetime
    expires_at: datetime | None


class JoinTokenInfo(Outbound):
    """The join token in force, without the token itself (only its hash is kept)."""

    created_at: datetime
    expires_at: datetime | None
    expired: bool
