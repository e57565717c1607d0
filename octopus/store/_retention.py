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


def _no_open_execution(owned: Any) -> Any:
    """No execution of the row is still queued or running (a cancelled task may still be
    stopping on an agent)."""
    return ~exists(select(executions.c.id).where(owned, executions.c.status.in_(_OPEN)))


def _executions_of(owned: Any) -> Any:
    return select(func.count()).select_from(executions).where(owned).scalar_subquery()


def _old_one_shot_tasks(conn: Connection, before: datetime, limit: int) -> list[tuple[int, int]]:
    owned = executions.c.task_id == tasks.c.id
    stmt = (
        select(tasks.c.id, _executions_of(owned))
        .where(
            tasks.c.type.in_(_ONE_SHOT),
            tasks.c.status.in_(values(TASK_TERMINAL)),
            tasks.c.updated_at < before,
            _no_open_execution(owned),
        )
        .order_by(tasks.c.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in conn.execute(stmt)]


def _old_runs_of_repeating_tasks(
    conn: Connection, before: datetime, limit: int
) -> list[tuple[int, int]]:
    owned = executions.c.run_id == runs.c.id
    stmt = (
        select(runs.c.id, _executions_of(owned))
        .join(tasks, tasks.c.id == runs.c.task_id)
        .where(
            tasks.c.type.not_in(_ONE_SHOT),
            runs.c.status.in_(values(RUN_TERMINAL)),
            func.coalesce(runs.c.finished_at, runs.c.fire_time) < before,
            _no_open_execution(owned),
        )
        .order_by(runs.c.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in conn.execute(stmt)]


def _within(
    candidates: Sequence[tuple[int, int]], budget: int, *, first: bool
) -> tuple[list[int], int, int]:
    """The leading candidates whose rows (one each, plus their executions) fit in ``budget``;
    with ``first``, at least one, so a task or run with more executions than the budget still
    goes, alone. Returns their ids, the rows they take and their executions."""
    chosen: list[int] = []
    used = executions_count = 0
    for item_id, count in candidates:
        if (chosen or not first) and used + 1 + count > budget:
            break
        chosen.append(item_id)
        used += 1 + count
        executions_count += count
    return chosen, used, executions_count


def _runs_of(conn: Connection, column: Any, ids: Sequence[int]) -> int:
    stmt = select(func.count()).select_from(runs).where(column.in_(ids))
    return int(conn.execute(stmt).scalar_one())


def prune_batch(conn: Connection, *, before: datetime, batch_size: int) -> Pruned:
    """Delete old finished one-shot tasks, then old finished runs of repeating tasks, while
    their rows and their executions' rows add up to at most ``batch_size``; see
    ``Store.prune_history``."""
    task_ids, used, task_executions = _within(
        _old_one_shot_tasks(conn, before, batch_size), batch_size, first=True
    )
    task_runs = _runs_of(conn, runs.c.task_id, task_ids) if task_ids else 0
    if task_ids:
        conn.execute(delete(tasks).where(tasks.c.id.in_(task_ids)))
    run_ids: list[int] = []
    run_executions = 0
    if used < batch_size:
        candidates = _old_runs_of_repeating_tasks(conn, before, batch_size - used)
        run_ids, _, run_executions = _within(candidates, batch_size - used, first=not task_ids)
    if run_ids:
        conn.execute(delete(runs).where(runs.c.id.in_(run_ids)))
    return Pruned(
        tasks=len(task_ids),
        runs=task_runs + len(run_ids),
        executions=task_executions + run_executions,
    )
