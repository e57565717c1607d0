"""Counts for the metrics endpoint: executions and agents by status, read at scrape time."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from octopus.core.enums import AgentStatus, ExecutionStatus
from octopus.store.base import StatusCounts
from octopus.store.tables import agents, executions


def status_counts(conn: Connection) -> StatusCounts:
    """Executions by status (over the ``(status, id)`` index) and enrolled agents by status."""
    by_execution = conn.execute(
        select(executions.c.status, func.count()).group_by(executions.c.status)
    )
    by_agent = conn.execute(
        select(agents.c.status, func.count())
        .where(agents.c.revoked_at.is_(None))
        .group_by(agents.c.status)
    )
    return StatusCounts(
        executions={ExecutionStatus(status): n for status, n in by_execution},
        agents={AgentStatus(status): n for status, n in by_agent},
    )
