"""Pruning old history in small batches: finished one-shot tasks whole, and finished runs of
repeating tasks, each with their executions and logs (ON DELETE CASCADE)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, exists, func, select

from octopus.core.enums import ExecutionStatus, TaskType
from octopus.core.states import RUN_TERMINAL, TASK_TERMINAL
from octopus.store._settle import values
from octopus.store.base import Pruned
from octopus.store.tables import executions, runs, tasks

_OPEN = (ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value)
_ONE_SHOT = (TaskType.ADHOC.value, TaskType.SCHEDULED.value)


def _no_open_execution(column: Any) -> Any:
    """No execution of ``column``'s row is still queued or running (a cancelled task may still
    be stopping on an agent)."""
    return ~exists(select(executions.c.id).where(column, executions.c.status.in_(_OPEN)))


def _old_one_shot_tasks(conn: Connection, before: datetime, limit: int) -> list[int]:
    stmt = (
        select(tasks.c.id)
        .where(
            tasks.c.type.in_(_ONE_SHOT),
            tasks.c.status.in_(values(TASK_TERMINAL)),
            tasks.c.updated_at < before,
            _no_open_execution(executions.c.task_id == tasks.c.id),
        )
        .order_by(tasks.c.id)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


def _old_runs_of_repeating_tasks(conn: Connection, before: datetime, limit: int) -> list[int]:
    finished = func.coalesce(runs.c.finished_at, runs.c.fire_time)
    stmt = (
        select(runs.c.id)
        .join(tasks, tasks.c.id == runs.c.task_id)
        .where(
            tasks.c.type.not_in(_ONE_SHOT),
            runs.c.status.in_(values(RUN_TERMINAL)),
            finished < before,
            _no_open_execution(executions.c.run_id == runs.c.id),
        )
        .order_by(runs.c.id)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


def _count(conn: Connection, table: Any, column: Any, ids: Sequence[int]) -> int:
    if not ids:
        return 0
    stmt = select(func.count()).select_from(table).where(column.in_(ids))
    return int(conn.execute(stmt).scalar_one())


def prune_batch(conn: Connection, *, before: datetime, batch_size: int) -> Pruned:
    """Delete at most ``batch_size`` old finished one-shot tasks, then at most what is left of
    ``batch_size`` in old finished runs of repeating tasks; see ``Store.prune_history``."""
    task_ids = _old_one_shot_tasks(conn, before, batch_size)
    task_runs = _count(conn, runs, runs.c.task_id, task_ids)
    task_executions = _count(conn, executions, executions.c.task_id, task_ids)
    if task_ids:
        conn.execute(delete(tasks).where(tasks.c.id.in_(task_ids)))
    run_ids = _old_runs_of_repeating_tasks(conn, before, batch_size - len(task_ids))
    run_executions = _count(conn, executions, executions.c.run_id, run_ids)
    if run_ids:
        conn.execute(delete(runs).where(runs.c.id.in_(run_ids)))
    return Pruned(
        tasks=len(task_ids),
        runs=task_runs + len(run_ids),
        executions=task_executions + run_executions,
    )
