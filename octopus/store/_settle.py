"""After executions change: end them, queue retries, and settle their runs and tasks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, insert, select, update

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus, TaskStatus, TaskType
from octopus.core.models import Execution
from octopus.core.retry import AttemptHistory, plan_retry
from octopus.core.rollup import roll_up, task_status_after
from octopus.core.states import (
    EXECUTION_TRANSITIONS,
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    TASK_TERMINAL,
    check_transition,
    sources_of,
)
from octopus.store._changes import changes_of
from octopus.store._dialect import lock_row
from octopus.store._records import error_to_json, execution_from_row, spec_from_row
from octopus.store.base import ExecutionStarted, Finished, Outcome, Wake
from octopus.store.tables import executions, runs, tasks

_FAILURES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT})


def values(statuses: Iterable[Any]) -> list[str]:
    """Plain strings for an ``IN (...)``: drivers may bind an enum by its name, not its value."""
    return sorted(str(status.value) for status in statuses)


def wake_for(agent: str | None) -> Wake:
    """Whom to tell about new work for ``agent`` (None: any agent may take it)."""
    return Wake(anyone=True) if agent is None else Wake(agents=frozenset({agent}))


def clean_log(log: str) -> str:
    """Captured output without NUL, which PostgreSQL text refuses (same result on both backends)."""
    return log.replace("\x00", "\ufffd")


def end_execution(
    conn: Connection, execution_id: int, *, agent: str, outcome: Outcome, now: datetime
) -> Execution | None:
    """Move a running execution held by ``agent`` to ``outcome.status``; None if it is not."""
    changes: dict[str, Any] = {
        "status": outcome.status.value,
        "result": outcome.result,
        "error": error_to_json(outcome.error),
        "log": clean_log(outcome.log),
        "log_truncated": outcome.log_truncated,
        "finished_at": outcome.finished_at or now,
        "lease_expires_at": None,
    }
    if outcome.started_at is not None:
        changes["started_at"] = outcome.started_at
    stmt = (
        update(executions)
        .where(
            executions.c.id == execution_id,
            executions.c.agent == agent,
            executions.c.status == ExecutionStatus.RUNNING.value,
        )
        .values(**changes)
        .returning(*executions.c)
    )
    row = conn.execute(stmt).mappings().first()
    return execution_from_row(row) if row is not None else None


def finish_executions(
    conn: Connection, agent: str, reports: Sequence[tuple[int, Outcome]], *, now: datetime
) -> tuple[list[Finished], Wake]:
    """Record many outcomes from ``agent`` in one transaction, each fenced on its own.

    An execution the agent does not hold while it is running is left as it is and answered
    with why (``not_found`` or ``fenced``); the others end, queue their retries and settle
    their runs in one ordered pass, exactly as one report at a time would.
    """
    ended: list[Execution] = []
    finished: list[Finished] = []
    for execution_id, outcome in reports:
        check_transition(
            EXECUTION_TRANSITIONS, "execution", ExecutionStatus.RUNNING, outcome.status
        )
        execution = end_execution(conn, execution_id, agent=agent, outcome=outcome, now=now)
        if execution is None:
            finished.append(_refused(conn, execution_id, agent))
        else:
            ended.append(execution)
            finished.append(Finished(execution_id=execution_id, execution=execution))
    return finished, conclude(conn, ended, now=now)


def _refused(conn: Connection, execution_id: int, agent: str) -> Finished:
    stmt = select(executions.c.status, executions.c.agent).where(executions.c.id == execution_id)
    row = conn.execute(stmt).first()
    if row is None:
        return Finished(execution_id=execution_id, refusal="not_found", reason="no such execution")
    reason = f"execution {execution_id} is {row.status} on {row.agent or 'no agent'}, "
    return Finished(
        execution_id=execution_id, refusal="fenced", reason=reason + f"not running on {agent}"
    )


def conclude(
    conn: Connection, ended: Sequence[Execution], *, now: datetime, also: Iterable[int] = ()
) -> Wake:
    """Queue the retries that ``ended`` executions call for, then settle their runs.

    ``also`` names more runs to settle in the same ordered pass (so locks never cross).
    """
    wake = Wake()
    for execution in ended:
        wake |= _retry(conn, execution, now=now)
    settle_runs(conn, [*(e.run_id for e in ended), *also], now=now)
    return wake


def _retry(conn: Connection, ended: Execution, *, now: datetime) -> Wake:
    row = conn.execute(select(tasks).where(tasks.c.id == ended.task_id)).mappings().one()
    _record_start(conn, ended, TaskType(row["type"]))
    if row["status"] == TaskStatus.CANCELLED.value:
        return Wake()
    spec = spec_from_row(row)
    plan = plan_retry(
        outcome=ended.status,
        ownership=ended.ownership,
        agent=ended.agent,
        history=_history(conn, ended),
        max_retries=spec.max_retries,
        backoff_seconds=spec.retry_backoff_seconds,
        on_lost=spec.on_lost,
    )
    if plan is None:
        return Wake()
    conn.execute(
        insert(executions).values(
            run_id=ended.run_id,
            task_id=ended.task_id,
            ownership=ended.ownership.value,
            agent=plan.agent,
            attempt=ended.attempt + 1,
            retry_of=ended.id,
            status=ExecutionStatus.QUEUED.value,
            not_before=now + timedelta(seconds=plan.delay_seconds),
            queued_at=now,
        )
    )
    return wake_for(plan.agent)


def _record_start(conn: Connection, ended: Execution, task_type: TaskType) -> None:
    """Note when an ended execution was queued and started (and its run's fire time, for the
    first execution of a scheduled run) for the listener, if the transaction collects them."""
    changes = changes_of(conn)
    if changes is None or ended.started_at is None:
        return
    fire_time = None
    if task_type is not TaskType.ADHOC and ended.retry_of is None:
        stmt = select(runs.c.fire_time).where(runs.c.id == ended.run_id)
        fire_time = conn.execute(stmt).scalar_one()
    record = ExecutionStarted(
        queued_at=ended.queued_at, started_at=ended.started_at, fire_time=fire_time
    )
    changes.started.append(record)


def _history(conn: Connection, ended: Execution) -> AttemptHistory:
    """Failures and losses along the retry chain that ends with ``ended``."""
    stmt = select(executions.c.id, executions.c.retry_of, executions.c.status).where(
        executions.c.run_id == ended.run_id
    )
    by_id = {row.id: row for row in conn.execute(stmt)}
    chain: list[ExecutionStatus] = []
    current: int | None = ended.id
    while current is not None and current in by_id:
        chain.append(ExecutionStatus(by_id[current].status))
        current = by_id[current].retry_of
    lost = chain.count(ExecutionStatus.LOST)
    failures = sum(1 for status in chain if status in _FAILURES)
    if ended.ownership is not Ownership.ANYONE:
        failures += lost  # a lost attempt that cannot move counts as a failure on its agent
    return AttemptHistory(attempt=ended.attempt, failures=failures, lost=lost)


def settle_runs(conn: Connection, run_ids: Iterable[int], *, now: datetime) -> None:
    """Bring each run's status in line with its executions, in id order (no lock cycles)."""
    for run_id in sorted(set(run_ids)):
        _settle_run(conn, run_id, now=now)


def _settle_run(conn: Connection, run_id: int, *, now: datetime) -> None:
    stmt = lock_row(select(runs.c.status, runs.c.task_id).where(runs.c.id == run_id))
    run = conn.execute(stmt).one()
    rows = conn.execute(select(executions).where(executions.c.run_id == run_id)).mappings()
    rollup = roll_up([execution_from_row(row) for row in rows])
    if rollup.status.value == run.status:
        return
    reason = rollup.summary() if rollup.status in RUN_TERMINAL else None
    if move_run(conn, run_id, rollup.status, now=now, reason=reason):
        settle_task(conn, run.task_id, rollup.status, now=now)


def move_run(
    conn: Connection, run_id: int, new: RunStatus, *, now: datetime, reason: str | None = None
) -> bool:
    """Guarded move of a run to ``new``; False if its current status does not allow it."""
    changes: dict[str, Any] = {"status": new.value}
    if new is RunStatus.RUNNING:
        changes["started_at"] = now
    if new in RUN_TERMINAL:
        changes["finished_at"] = now
        # A reason given at firing ("run now", "catch-up ...") is kept, the outcome appended.
        changes["reason"] = (
            runs.c.reason
            if reason is None
            else case((runs.c.reason.is_(None), reason), else_=runs.c.reason + "; " + reason)
        )
    stmt = (
        update(runs)
        .where(runs.c.id == run_id, runs.c.status.in_(values(sources_of(RUN_TRANSITIONS, new))))
        .values(**changes)
        .returning(runs.c.id)
    )
    return conn.execute(stmt).first() is not None


def settle_task(conn: Connection, task_id: int, run_status: RunStatus, *, now: datetime) -> None:
    """Record a run's new status on its task; a finished or cancelled task keeps its status."""
    task = conn.execute(
        lock_row(select(tasks.c.type, tasks.c.status).where(tasks.c.id == task_id))
    ).one()
    new = task_status_after(TaskType(task.type), TaskStatus(task.status), run_status)
    still_open = tasks.c.status.notin_(values(TASK_TERMINAL))
    conn.execute(
        update(tasks)
        .where(tasks.c.id == task_id)
        .values(
            status=case((still_open, new.value), else_=tasks.c.status),
            last_run_status=run_status.value,
            updated_at=now,
        )
    )
