"""Task use cases: create (firing adhoc tasks), read, list, and cancel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select, update

from octopus.core.enums import ExecutionStatus, RunStatus, TaskStatus, TaskType
from octopus.core.models import Execution, Run, Task
from octopus.core.states import TASK_TERMINAL
from octopus.errors import InvalidTransition, NotFound
from octopus.store._dialect import Unindexed
from octopus.store._records import (
    EXECUTION_COLUMNS,
    execution_from_row,
    run_from_row,
    task_from_row,
)
from octopus.store._settle import move_run, settle_runs, values
from octopus.store.base import Wake
from octopus.store.tables import executions, runs, tasks


def get_task(conn: Connection, task_id: int) -> Task:
    """One task; NotFound if absent."""
    row = conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().first()
    if row is None:
        raise NotFound("task", task_id)
    return task_from_row(row)


def require_task(conn: Connection, task_id: int) -> None:
    """NotFound unless the task exists."""
    if conn.execute(select(tasks.c.id).where(tasks.c.id == task_id)).first() is None:
        raise NotFound("task", task_id)


def list_tasks(
    conn: Connection,
    *,
    status: TaskStatus | None,
    type: TaskType | None,
    plugin: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Task], int]:
    """A page of tasks, newest first, and how many match."""
    conditions: list[Any] = []
    if status is not None:
        conditions.append(tasks.c.status == status.value)
    if type is not None:
        conditions.append(tasks.c.type == type.value)
    if plugin is not None:
        conditions.append(tasks.c.plugin == plugin)
    page = select(tasks).where(*conditions).order_by(tasks.c.id.desc()).limit(limit).offset(offset)
    total = conn.execute(select(func.count()).select_from(tasks).where(*conditions)).scalar_one()
    return [task_from_row(row) for row in conn.execute(page).mappings()], total


def _run_conditions(task_id: int, status: RunStatus | None) -> list[ColumnElement[bool]]:
    conditions = [runs.c.task_id == task_id]
    if status is not None:
        conditions.append(runs.c.status == status.value)
    return conditions


def list_runs(
    conn: Connection, task_id: int, *, limit: int, offset: int, status: RunStatus | None
) -> list[Run]:
    """A page of a task's runs (only those in ``status`` if given), newest fire time first."""
    require_task(conn, task_id)
    stmt = (
        select(runs)
        .where(*_run_conditions(task_id, status))
        .order_by(runs.c.fire_time.desc(), runs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [run_from_row(row) for row in conn.execute(stmt).mappings()]


def count_runs(conn: Connection, task_id: int, *, status: RunStatus | None) -> int:
    """How many runs the task has (only those in ``status`` if given)."""
    require_task(conn, task_id)
    stmt = select(func.count()).select_from(runs).where(*_run_conditions(task_id, status))
    return int(conn.execute(stmt).scalar_one())


def list_executions(
    conn: Connection,
    *,
    task_id: int | None,
    run_ids: Sequence[int] | None,
    limit: int,
    offset: int,
) -> tuple[list[Execution], int]:
    """A page of executions, newest first, and how many match."""
    conditions: list[Any] = []
    if task_id is not None:
        require_task(conn, task_id)
        conditions.append(executions.c.task_id == task_id)
    if run_ids is not None:
        conditions.append(executions.c.run_id.in_(list(run_ids)))
    page = (
        select(*EXECUTION_COLUMNS)
        .where(*conditions)
        .order_by(executions.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = conn.execute(
        select(func.count()).select_from(executions).where(*conditions)
    ).scalar_one()
    return [execution_from_row(row) for row in conn.execute(page).mappings()], total


def get_execution(conn: Connection, execution_id: int) -> Execution:
    """One execution; NotFound if absent."""
    stmt = select(*EXECUTION_COLUMNS).where(executions.c.id == execution_id)
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFound("execution", execution_id)
    return execution_from_row(row)


def get_execution_log(conn: Connection, execution_id: int) -> tuple[str, bool]:
    """An execution's captured output and whether it was cut; NotFound if absent."""
    stmt = select(executions.c.log, executions.c.log_truncated).where(
        executions.c.id == execution_id
    )
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound("execution", execution_id)
    return row.log, row.log_truncated


def cancel_task(conn: Connection, task_id: int, *, now: datetime) -> tuple[Task, Wake]:
    """Cancel a task that has not finished: queued executions end, running ones are flagged."""
    moved = conn.execute(
        update(tasks)
        .where(tasks.c.id == task_id, tasks.c.status.notin_(values(TASK_TERMINAL)))
        .values(status=TaskStatus.CANCELLED.value, next_run_at=None, updated_at=now)
        .returning(tasks.c.id)
    ).first()
    if moved is None:
        current = get_task(conn, task_id).status
        raise InvalidTransition("task", current.value, TaskStatus.CANCELLED.value)
    _, wake = stop_executions(conn, task_id, now=now)
    waiting = conn.execute(select(tasks.c.waiting_run_id).where(tasks.c.id == task_id)).scalar()
    if waiting is not None:
        move_run(conn, waiting, RunStatus.CANCELLED, now=now, reason="task cancelled")
        conn.execute(update(tasks).where(tasks.c.id == task_id).values(waiting_run_id=None))
    return get_task(conn, task_id), wake


def stop_executions(
    conn: Connection, task_id: int, *, now: datetime, run_ids: Sequence[int] | None = None
) -> tuple[list[int], Wake]:
    """Cancel a task's queued executions and flag its running ones for stopping (only those of
    ``run_ids`` if given); settles the runs whose executions were cancelled. Returns the runs
    touched and whom to wake (the agents that must stop an execution)."""
    conditions: list[Any] = [executions.c.task_id == task_id]
    if run_ids is not None:
        conditions.append(executions.c.run_id.in_(list(run_ids)))
    cancelled = conn.execute(
        update(executions)
        .where(*conditions, Unindexed(executions.c.status) == ExecutionStatus.QUEUED.value)
        .values(status=ExecutionStatus.CANCELLED.value, finished_at=now)
        .returning(executions.c.run_id)
    ).all()
    stopping = conn.execute(
        update(executions)
        .where(*conditions, Unindexed(executions.c.status) == ExecutionStatus.RUNNING.value)
        .values(cancel_requested=True)
        .returning(executions.c.agent, executions.c.run_id)
    ).all()
    settle_runs(conn, (row.run_id for row in cancelled), now=now)
    wake = Wake(agents=frozenset(row.agent for row in stopping if row.agent is not None))
    touched = sorted({row.run_id for row in cancelled} | {row.run_id for row in stopping})
    return touched, wake
