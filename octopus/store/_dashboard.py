"""Read queries for the dashboard: counts, throughput, failures, a task finder, change marks.

Each query is bounded by an index (see migration 0003) so pages stay fast with a large history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

from octopus.core.enums import ExecutionStatus, TaskStatus
from octopus.core.models import Execution, Task
from octopus.store._dialect import minute_of
from octopus.store._records import EXECUTION_COLUMNS, execution_from_row, task_from_row
from octopus.store.base import ChangeMarks, MinuteCount, TaskFilter, TaskPage
from octopus.store.tables import agents, executions, tasks

FAILED_OUTCOMES = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.LOST)
_OPEN_EXECUTIONS = (ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value)


def task_counts(conn: Connection) -> dict[TaskStatus, int]:
    """How many tasks are in each status (an index-only scan of ``(status, id)``)."""
    stmt = select(tasks.c.status, func.count()).group_by(tasks.c.status)
    return {TaskStatus(status): count for status, count in conn.execute(stmt)}


def outcome_counts(conn: Connection, *, since: datetime) -> dict[ExecutionStatus, int]:
    """How many executions finished in each status since ``since``."""
    stmt = (
        select(executions.c.status, func.count())
        .where(executions.c.finished_at >= since)
        .group_by(executions.c.status)
    )
    return {ExecutionStatus(status): count for status, count in conn.execute(stmt)}


def executions_per_minute(conn: Connection, *, since: datetime) -> list[MinuteCount]:
    """Finished executions per UTC minute and status since ``since``."""
    minute = minute_of(conn, executions.c.finished_at).label("minute")
    stmt = (
        select(minute, executions.c.status, func.count())
        .where(executions.c.finished_at >= since)
        .group_by(minute, executions.c.status)
    )
    return [
        MinuteCount(minute=m, status=ExecutionStatus(s), count=n) for m, s, n in conn.execute(stmt)
    ]


def recent_failures(conn: Connection, *, limit: int) -> list[Execution]:
    """The newest failed, timed-out or lost executions (one indexed scan per status)."""
    found: list[Execution] = []
    for status in FAILED_OUTCOMES:
        stmt = (
            select(*EXECUTION_COLUMNS)
            .where(executions.c.status == status.value)
            .order_by(executions.c.id.desc())
            .limit(limit)
        )
        found += [execution_from_row(row) for row in conn.execute(stmt).mappings()]
    return sorted(found, key=lambda e: e.id, reverse=True)[:limit]


def upcoming_tasks(conn: Connection, *, limit: int) -> list[Task]:
    """Tasks with a next fire time, soonest first."""
    stmt = (
        select(tasks)
        .where(tasks.c.next_run_at.is_not(None))
        .order_by(tasks.c.next_run_at)
        .limit(limit)
    )
    return [task_from_row(row) for row in conn.execute(stmt).mappings()]


def _conditions(conn: Connection, wanted: TaskFilter) -> list[Any]:
    conditions: list[Any] = []
    if wanted.status is not None:
        conditions.append(tasks.c.status == wanted.status.value)
    if wanted.type is not None:
        conditions.append(tasks.c.type == wanted.type.value)
    if wanted.plugin:
        conditions.append(tasks.c.plugin == wanted.plugin)
    if wanted.agent:
        ran_there = select(executions.c.task_id).where(executions.c.agent == wanted.agent)
        conditions.append(tasks.c.id.in_(ran_there))
    if wanted.search:
        pattern = "%" + _escape_like(wanted.search) + "%"
        conditions.append(func.lower(tasks.c.name).like(pattern.lower(), escape="\\"))
    return conditions


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_tasks(conn: Connection, wanted: TaskFilter, *, before: int | None, limit: int) -> TaskPage:
    """A page of tasks newest first, after the keyset ``before`` (an id), and the total."""
    conditions = _conditions(conn, wanted)
    page: Select[Any] = select(tasks).where(*conditions)
    if before is not None:
        page = page.where(tasks.c.id < before)
    rows = conn.execute(page.order_by(tasks.c.id.desc()).limit(limit + 1)).mappings().all()
    found = [task_from_row(row) for row in rows[:limit]]
    total = conn.execute(select(func.count()).select_from(tasks).where(*conditions)).scalar_one()
    next_before = found[-1].id if len(rows) > limit else None
    return TaskPage(tasks=found, total=total, next_before=next_before)


def _digest(rows: Iterable[Any]) -> str:
    hasher = hashlib.blake2b(digest_size=12)
    for row in rows:
        hasher.update(repr(tuple(row)).encode())
    return hasher.hexdigest()


_TASK_MARKS = (tasks.c.id, tasks.c.updated_at)
_EXECUTION_MARKS = (executions.c.id, executions.c.finished_at)


def change_marks(conn: Connection) -> ChangeMarks:
    """Cheap fingerprints that move whenever tasks, executions or agents change."""
    # One max() per statement: SQLite answers a lone max() from the end of an index, but two
    # in one SELECT walk the whole index (600 ms over 1,000,000 executions, every half second
    # while a dashboard is open).
    task_mark = [conn.execute(select(func.max(column))).scalar() for column in _TASK_MARKS]
    finished = [conn.execute(select(func.max(column))).scalar() for column in _EXECUTION_MARKS]
    open_rows = conn.execute(
        select(
            executions.c.status,
            func.count(),
            func.sum(executions.c.id),
            func.sum(func.length(executions.c.log)),
        )
        .where(executions.c.status.in_(_OPEN_EXECUTIONS))
        .group_by(executions.c.status)
    ).all()
    agent_rows = conn.execute(
        select(
            agents.c.name,
            agents.c.status,
            agents.c.drain_requested,
            agents.c.last_heartbeat,
            agents.c.free_slots,
            agents.c.revoked_at,
        ).order_by(agents.c.name)
    ).all()
    return ChangeMarks(
        tasks=_digest([task_mark]),
        executions=_digest([finished, *sorted(open_rows)]),
        agents=_digest(agent_rows),
    )
