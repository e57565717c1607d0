"""Scheduler support beyond the Store protocol: due tasks, firing them once, pause and resume."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, or_, select, update

from octopus.core.enums import TaskStatus
from octopus.core.models import Run, Task
from octopus.errors import InvalidTransition
from octopus.store._fire import fire
from octopus.store._records import run_from_row, task_from_row
from octopus.store._settle import values
from octopus.store._tasks import get_task
from octopus.store.base import Wake
from octopus.store.tables import runs, tasks

FIREABLE = frozenset({TaskStatus.SCHEDULED, TaskStatus.ACTIVE})
"""Task statuses whose ``next_run_at`` the scheduler honours (a paused task waits)."""


def due_tasks(conn: Connection, *, now: datetime, limit: int) -> list[Task]:
    """Tasks waiting to fire whose ``next_run_at`` has come or is not planned yet."""
    stmt = (
        select(tasks)
        .where(
            or_(tasks.c.next_run_at <= now, tasks.c.next_run_at.is_(None)),
            tasks.c.status.in_(values(FIREABLE)),
        )
        .order_by(tasks.c.next_run_at.is_not(None), tasks.c.next_run_at, tasks.c.id)
        .limit(limit)
    )
    return [task_from_row(row) for row in conn.execute(stmt).mappings()]


def fire_run(
    conn: Connection,
    task_id: int,
    *,
    fire_time: datetime,
    next_run_at: datetime | None,
    now: datetime,
) -> tuple[Run | None, Wake]:
    """Fire the run due at ``fire_time`` and move ``next_run_at`` on, exactly once.

    Only the caller that finds ``next_run_at == fire_time`` fires (a second replica, or a
    retry after a crash, gets None); ``UNIQUE(task_id, fire_time)`` backs this up.
    """
    row = (
        conn.execute(
            update(tasks)
            .where(
                tasks.c.id == task_id,
                tasks.c.next_run_at == fire_time,
                tasks.c.status.in_(values(FIREABLE)),
            )
            .values(next_run_at=next_run_at, updated_at=now)
            .returning(*tasks.c)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None, Wake()
    task = task_from_row(row)
    run_id, wake = fire(conn, task.id, task.spec, fire_time=fire_time, now=now)
    run = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().one()
    return run_from_row(run), wake


def plan_task(conn: Connection, task_id: int, *, next_run_at: datetime, now: datetime) -> bool:
    """Set the first fire time of a task that has none (a new cron task); False if it has."""
    planned = conn.execute(
        update(tasks)
        .where(
            tasks.c.id == task_id,
            tasks.c.next_run_at.is_(None),
            tasks.c.status.in_(values(FIREABLE)),
        )
        .values(next_run_at=next_run_at, updated_at=now)
        .returning(tasks.c.id)
    ).first()
    return planned is not None


def set_paused(
    conn: Connection, task_id: int, paused: bool, *, now: datetime, next_run_at: datetime | None
) -> Task:
    """Guarded ``active -> paused`` or ``paused -> active`` (then firing at ``next_run_at``)."""
    old, new = (TaskStatus.ACTIVE, TaskStatus.PAUSED)[:: 1 if paused else -1]
    changes: dict[str, object] = {"status": new.value, "updated_at": now}
    if not paused and next_run_at is not None:
        changes["next_run_at"] = next_run_at
    moved = conn.execute(
        update(tasks)
        .where(tasks.c.id == task_id, tasks.c.status == old.value)
        .values(**changes)
        .returning(tasks.c.id)
    ).first()
    if moved is None:
        current = get_task(conn, task_id).status
        raise InvalidTransition("task", current.value, new.value)
    return get_task(conn, task_id)
