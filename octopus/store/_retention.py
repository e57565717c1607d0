"""Pruning old history in small batches: finished one-shot tasks whole, and finished runs of
repeating tasks, each with their executions and logs (ON DELETE CASCADE).

A batch is chosen in a read transaction (the scans that find old rows hold no write lock) and
deleted by id in a short write transaction that checks again that each row is still finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, delete, exists, func, select

from octopus.core.enums import ExecutionStatus, TaskType
from octopus.core.states import RUN_TERMINAL, TASK_TERMINAL
from octopus.store._settle import values
from octopus.store.base import Pruned
from octopus.store.tables import executions, runs, tasks

_OPEN = (ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value)
_ONE_SHOT = (TaskType.ADHOC.value, TaskType.SCHEDULED.value)


@dataclass(frozen=True, slots=True)
class Item:
    """A task or run to delete, with how many runs and executions go with it."""

    id: int
    runs: int
    executions: int

    @property
    def rows(self) -> int:
        """Rows it takes to delete: its own, its runs' (a task's) and its executions'."""
        return 1 + self.runs + self.executions


@dataclass(frozen=True, slots=True)
class Batch:
    """What one batch will delete, by id."""

    tasks: dict[int, Item] = field(default_factory=dict)
    runs: dict[int, Item] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Rows the batch deletes."""
        return sum(item.rows for item in (*self.tasks.values(), *self.runs.values()))


def _no_open_execution(owned: Any) -> Any:
    """No execution of the row is still queued or running (a cancelled task may still be
    stopping on an agent)."""
    return ~exists(select(executions.c.id).where(owned, executions.c.status.in_(_OPEN)))


def _executions_of(owned: Any) -> Any:
    return select(func.count()).select_from(executions).where(owned).scalar_subquery()


def _finished_task() -> list[Any]:
    return [
        tasks.c.type.in_(_ONE_SHOT),
        tasks.c.status.in_(values(TASK_TERMINAL)),
        _no_open_execution(executions.c.task_id == tasks.c.id),
    ]


def _finished_run() -> list[Any]:
    return [
        runs.c.status.in_(values(RUN_TERMINAL)),
        _no_open_execution(executions.c.run_id == runs.c.id),
    ]


def _old_tasks(conn: Connection, before: datetime, limit: int) -> list[Item]:
    runs_of = select(func.count()).select_from(runs).where(runs.c.task_id == tasks.c.id)
    stmt = (
        select(
            tasks.c.id,
            runs_of.scalar_subquery(),
            _executions_of(executions.c.task_id == tasks.c.id),
        )
        .where(*_finished_task(), tasks.c.updated_at < before)
        .order_by(tasks.c.id)
        .limit(limit)
    )
    return [Item(id=row[0], runs=row[1], executions=row[2]) for row in conn.execute(stmt)]


def _repeating_runs() -> Any:
    return (
        select(runs.c.id)
        .join(tasks, tasks.c.id == runs.c.task_id)
        .where(tasks.c.type.not_in(_ONE_SHOT), *_finished_run())
    )


def _old_runs(conn: Connection, before: datetime, limit: int) -> list[Item]:
    ended = func.coalesce(runs.c.finished_at, runs.c.fire_time)
    stmt = (
        _repeating_runs()
        .add_columns(_executions_of(executions.c.run_id == runs.c.id))
        .where(ended < before)
        .order_by(runs.c.id)
        .limit(limit)
    )
    return [Item(id=row[0], runs=0, executions=row[1]) for row in conn.execute(stmt)]


def _surplus_runs(conn: Connection, keep: int, limit: int) -> list[Item]:
    """Finished runs of repeating tasks beyond each task's newest ``keep`` finished runs."""
    rank = func.row_number().over(partition_by=runs.c.task_id, order_by=runs.c.fire_time.desc())
    ranked = _repeating_runs().add_columns(rank.label("rank")).subquery()
    stmt = (
        select(ranked.c.id, _executions_of(executions.c.run_id == ranked.c.id))
        .where(ranked.c.rank > keep)
        .order_by(ranked.c.id)
        .limit(limit)
    )
    return [Item(id=row[0], runs=0, executions=row[1]) for row in conn.execute(stmt)]


def _within(candidates: Sequence[Item], budget: int, *, first: bool) -> dict[int, Item]:
    """The leading candidates whose rows fit in ``budget``; with ``first``, at least one, so a
    task or run with more executions than the budget still goes, alone."""
    chosen: dict[int, Item] = {}
    used = 0
    for item in candidates:
        if (chosen or not first) and used + item.rows > budget:
            break
        chosen[item.id] = item
        used += item.rows
    return chosen


def plan_batch(
    conn: Connection, *, before: datetime | None, keep_runs: int | None, batch_size: int
) -> Batch:
    """Choose one batch: old finished one-shot tasks first, then old finished runs of
    repeating tasks, then runs beyond the newest ``keep_runs`` of each repeating task; see
    ``Store.prune_history``."""
    batch = Batch()
    if before is not None:
        batch.tasks.update(_within(_old_tasks(conn, before, batch_size), batch_size, first=True))
    finders: list[Callable[[int], list[Item]]] = []
    if before is not None:
        finders.append(partial(_old_runs, conn, before))
    if keep_runs is not None:
        finders.append(partial(_surplus_runs, conn, keep_runs))
    for find in finders:
        room = batch_size - batch.rows
        if room <= 0:
            break
        fresh = [item for item in find(room + len(batch.runs)) if item.id not in batch.runs]
        batch.runs.update(_within(fresh, room, first=not (batch.tasks or batch.runs)))
    return batch


def delete_batch(conn: Connection, batch: Batch) -> Pruned:
    """Delete what ``plan_batch`` chose, skipping any row that is no longer finished."""
    gone: list[Item] = []
    if batch.tasks:
        stmt = delete(tasks).where(tasks.c.id.in_(batch.tasks), *_finished_task())
        gone += [batch.tasks[i] for i in conn.execute(stmt.returning(tasks.c.id)).scalars()]
    tasks_gone = len(gone)
    if batch.runs:
        stmt = delete(runs).where(runs.c.id.in_(batch.runs), *_finished_run())
        gone += [batch.runs[i] for i in conn.execute(stmt.returning(runs.c.id)).scalars()]
    return Pruned(
        tasks=tasks_gone,
        runs=sum(item.runs for item in gone[:tasks_gone]) + len(gone) - tasks_gone,
        executions=sum(item.executions for item in gone),
    )
