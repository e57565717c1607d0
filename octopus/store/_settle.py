"""After executions change: end them, queue retries, and settle their runs and tasks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, bindparam, case, false, insert, or_, select, update

from octopus.core.enums import ExecutionStatus, OnLost, Ownership, RunStatus, TaskStatus, TaskType
from octopus.core.models import Execution
from octopus.core.retry import AttemptHistory, plan_retry
from octopus.core.rollup import RunRollup, roll_up, task_status_after
from octopus.core.states import (
    EXECUTION_TRANSITIONS,
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    TASK_TERMINAL,
    check_transition,
    sources_of,
)
from octopus.store import _prepared as prepared
from octopus.store._changes import changes_of
from octopus.store._dialect import lock_in_order, lock_row
from octopus.store._records import error_to_json, execution_from_row
from octopus.store.base import ExecutionStarted, Finished, Outcome, Wake
from octopus.store.tables import executions, runs, tasks

_FAILURES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT})


def values(statuses: Iterable[Any]) -> list[str]:
    """Plain strings for an ``IN (...)``: drivers may bind an enum by its name, not its value."""
    return sorted(str(status.value) for status in statuses)


def one_of(column: Any, statuses: Iterable[Any]) -> Any:
    """``column`` equals one of ``statuses``, as an OR of equalities rather than ``IN``: an IN
    list is expanded on every execution (and cannot take part in an executemany), which cost
    more than the rest of the small statements that run once per task or execution."""
    return or_(false(), *(column == value for value in values(statuses)))


def wake_for(agent: str | None) -> Wake:
    """Whom to tell about new work for ``agent`` (None: any agent may take it)."""
    return Wake(anyone=True) if agent is None else Wake(agents=frozenset({agent}))


def clean_log(log: str) -> str:
    """Captured output without NUL, which PostgreSQL text refuses (same result on both backends)."""
    return log.replace("\x00", "\ufffd")


def _param(column: Any) -> Any:
    """A bound parameter typed like ``column`` (named apart from it, as UPDATE requires)."""
    return bindparam(f"p_{column.name}", type_=column.type)


@cache
def _end_statement(with_start: bool, returning: bool = True) -> Any:
    """The guarded UPDATE that ends a running execution, built once: statement building is
    most of the Python cost of a report, and these run once per execution."""
    c = executions.c
    changes = {
        column.name: _param(column)
        for column in (c.status, c.result, c.error, c.log, c.log_truncated, c.finished_at)
    }
    if with_start:
        changes["started_at"] = _param(c.started_at)
    stmt = (
        update(executions)
        .where(
            c.id == bindparam("p_id"),
            c.agent == bindparam("p_agent"),
            c.status == ExecutionStatus.RUNNING.value,
        )
        .values(**changes, lease_expires_at=None)
    )
    return stmt.returning(*executions.c) if returning else stmt


def _end_params(execution_id: int, agent: str, outcome: Outcome, now: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {
        "p_id": execution_id,
        "p_agent": agent,
        "p_status": outcome.status.value,
        "p_result": outcome.result,
        "p_error": error_to_json(outcome.error),
        "p_log": clean_log(outcome.log),
        "p_log_truncated": outcome.log_truncated,
        "p_finished_at": outcome.finished_at or now,
    }
    if outcome.started_at is not None:
        params["p_started_at"] = outcome.started_at
    return params


def end_execution(
    conn: Connection, execution_id: int, *, agent: str, outcome: Outcome, now: datetime
) -> Execution | None:
    """Move a running execution held by ``agent`` to ``outcome.status``; None if it is not."""
    params = _end_params(execution_id, agent, outcome, now)
    stmt = _end_statement(outcome.started_at is not None)
    row = conn.execute(stmt, params).mappings().first()
    return execution_from_row(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class Ended:
    """An execution as far as judging and settling it goes (whole rows, with their results
    and times, cost a report batch a sixth of its time to read and rebuild)."""

    id: int
    run_id: int
    task_id: int
    ownership: Ownership
    agent: str | None
    attempt: int
    retry_of: int | None
    status: ExecutionStatus
    queued_at: datetime
    started_at: datetime | None

    @classmethod
    def of(cls, execution: Execution) -> Ended:
        """The part of a whole ``Execution`` that settling reads."""
        return cls(*(getattr(execution, field.name) for field in fields(cls)))


_HELD = lock_row(
    select(*(executions.c[field.name] for field in fields(Ended)))
    .where(executions.c.id.in_(bindparam("p_ids", expanding=True)))
    .order_by(executions.c.id)
)


def finish_executions(
    conn: Connection, agent: str, reports: Sequence[tuple[int, Outcome]], *, now: datetime
) -> tuple[list[Finished], Wake]:
    """Record many outcomes from ``agent`` in one transaction, each fenced on its own.

    An execution the agent does not hold while it is running is left as it is and answered
    with why (``not_found`` or ``fenced``); the others end, queue their retries and settle
    their runs in one ordered pass, exactly as one report at a time would. The executions are
    read (and locked, on PostgreSQL) first, so the whole batch is judged at once and written
    with one executemany per statement shape rather than a statement per report.
    """
    for _, outcome in reports:
        check_transition(
            EXECUTION_TRANSITIONS, "execution", ExecutionStatus.RUNNING, outcome.status
        )
    ids = sorted({execution_id for execution_id, _ in reports})
    held = {
        row["id"]: Ended(
            row["id"],
            row["run_id"],
            row["task_id"],
            Ownership(row["ownership"]),
            row["agent"],
            row["attempt"],
            row["retry_of"],
            ExecutionStatus(row["status"]),
            row["queued_at"],
            row["started_at"],
        )
        for row in prepared.rows(conn, _HELD, {"p_ids": ids})
    }
    ended: list[Ended] = []
    finished: list[Finished] = []
    writes: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for execution_id, outcome in reports:
        current = held.get(execution_id)
        if current is None:
            finished.append(
                Finished(execution_id=execution_id, refusal="not_found", reason="no such execution")
            )
            continue
        if current.status is not ExecutionStatus.RUNNING or current.agent != agent:
            finished.append(_fenced(current, agent))
            continue
        execution = held[execution_id] = replace(
            current,
            status=outcome.status,
            started_at=outcome.started_at or current.started_at,
        )
        params = _end_params(execution_id, agent, outcome, now)
        writes[outcome.started_at is not None].append(params)
        ended.append(execution)
        finished.append(Finished(execution_id=execution_id, status=outcome.status))
    for with_start, batch in writes.items():
        prepared.execute_many(conn, _end_statement(with_start, returning=False), batch)
    return finished, conclude(conn, ended, now=now)


def _fenced(current: Ended, agent: str) -> Finished:
    reason = f"execution {current.id} is {current.status.value} on {current.agent or 'no agent'}, "
    return Finished(
        execution_id=current.id, refusal="fenced", reason=reason + f"not running on {agent}"
    )


def conclude(
    conn: Connection, ended: Sequence[Ended], *, now: datetime, also: Iterable[int] = ()
) -> Wake:
    """Queue the retries that ``ended`` executions call for, then settle their runs.

    ``also`` names more runs to settle in the same ordered pass (so locks never cross).
    """
    wake = Wake()
    if ended:
        found = prepared.rows(conn, _OWNERS, {"p_ids": _ids(ended)})
        owners = {row["run_id"]: row for row in found}
        for execution in ended:
            wake |= _retry(conn, execution, owners[execution.run_id], now=now)
    settle_runs(conn, [*(e.run_id for e in ended), *also], now=now)
    return wake


def _ids(ended: Sequence[Ended]) -> list[int]:
    return sorted({execution.run_id for execution in ended})


_OWNERS = (
    select(
        tasks.c.type,
        tasks.c.status,
        tasks.c.max_retries,
        tasks.c.retry_backoff_seconds,
        tasks.c.on_lost,
        runs.c.id.label("run_id"),
        runs.c.fire_time.label("run_fire_time"),
    )
    .join(runs, runs.c.task_id == tasks.c.id)
    .where(runs.c.id.in_(bindparam("p_ids", expanding=True)))
)
"""What settling an ended execution needs of its task (type, status, retry policy) and run
(fire time), for a batch at once."""
_CHAIN = select(executions.c.id, executions.c.retry_of, executions.c.status).where(
    executions.c.run_id == bindparam("p_run_id")
)
_RUNS_TO_SETTLE = lock_row(
    select(runs.c.id, runs.c.status, runs.c.task_id)
    .where(runs.c.id.in_(bindparam("p_ids", expanding=True)))
    .order_by(runs.c.id)
)
_RUNS_EXECUTIONS = select(
    executions.c.run_id,
    executions.c.id,
    executions.c.retry_of,
    executions.c.status,
    executions.c.started_at,
).where(executions.c.run_id.in_(bindparam("p_ids", expanding=True)))


@dataclass(frozen=True, slots=True)
class _Attempt:
    """An execution as far as rolling up its run needs (whole rows, with results and logs,
    cost more to read than the rest of a report)."""

    id: int
    retry_of: int | None
    status: ExecutionStatus
    started_at: datetime | None


_NEVER_RETRIED = frozenset({ExecutionStatus.SUCCEEDED, ExecutionStatus.CANCELLED})


def _retry(conn: Connection, ended: Ended, owner: prepared.Record, *, now: datetime) -> Wake:
    task_type = TaskType(owner["type"])
    _record_start(conn, ended, task_type, owner["run_fire_time"])
    if owner["status"] == TaskStatus.CANCELLED.value or ended.status in _NEVER_RETRIED:
        return Wake()
    plan = plan_retry(
        outcome=ended.status,
        ownership=ended.ownership,
        agent=ended.agent,
        history=_history(conn, ended),
        max_retries=owner["max_retries"],
        backoff_seconds=owner["retry_backoff_seconds"],
        on_lost=OnLost(owner["on_lost"]),
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


def _record_start(
    conn: Connection, ended: Ended, task_type: TaskType, fire_time: datetime | None
) -> None:
    """Note when an ended execution was queued and started (and its run's fire time, for the
    first execution of a scheduled run) for the listener, if the transaction collects them."""
    changes = changes_of(conn)
    if changes is None or ended.started_at is None:
        return
    scheduled = task_type is not TaskType.ADHOC and ended.retry_of is None
    record = ExecutionStarted(
        queued_at=ended.queued_at,
        started_at=ended.started_at,
        fire_time=fire_time if scheduled else None,
    )
    changes.started.append(record)


def _history(conn: Connection, ended: Ended) -> AttemptHistory:
    """Failures and losses along the retry chain that ends with ``ended``."""
    by_id = {row.id: row for row in conn.execute(_CHAIN, {"p_run_id": ended.run_id})}
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


@dataclass(frozen=True, slots=True)
class RunNow:
    """A run as settling reads it (locked, on PostgreSQL)."""

    id: int
    task_id: int
    status: RunStatus


def rolled_up(conn: Connection, run_ids: Iterable[int]) -> list[tuple[RunNow, RunRollup]]:
    """Each run (read and locked in id order) with the status its executions add up to."""
    ids = sorted(set(run_ids))
    if not ids:
        return []
    by_run: dict[int, list[_Attempt]] = {run_id: [] for run_id in ids}
    current = prepared.rows(conn, _RUNS_TO_SETTLE, {"p_ids": ids})
    for row in prepared.rows(conn, _RUNS_EXECUTIONS, {"p_ids": ids}):
        status = ExecutionStatus(row["status"])
        attempt = _Attempt(row["id"], row["retry_of"], status, row["started_at"])
        by_run[row["run_id"]].append(attempt)
    return [
        (RunNow(run["id"], run["task_id"], RunStatus(run["status"])), roll_up(by_run[run["id"]]))
        for run in current
    ]


def settle_runs(conn: Connection, run_ids: Iterable[int], *, now: datetime) -> None:
    """Bring each run's status in line with its executions, then their tasks'.

    A batch costs a handful of statements whatever its size: runs are read (and locked, on
    PostgreSQL) in id order, then their tasks in id order, so concurrent settles never lock
    in a cycle.
    """
    moved: list[tuple[int, RunStatus]] = []
    groups: dict[tuple[RunStatus, str | None], list[int]] = {}
    for run, rollup in rolled_up(conn, run_ids):
        if rollup.status not in RUN_TRANSITIONS[run.status]:
            continue  # unchanged, or a move the run's status does not allow
        reason = rollup.summary() if rollup.status in RUN_TERMINAL else None
        groups.setdefault((rollup.status, reason), []).append(run.id)
        moved.append((run.task_id, rollup.status))
    # Runs that move alike (most of a batch: "1/1 succeeded") move in one UPDATE; they are
    # locked already, so the order of these statements cannot deadlock.
    for (new, reason), group in groups.items():
        params = {"p_ids": group, "p_started_at": now, "p_finished_at": now, "p_reason": reason}
        prepared.rows(conn, _move_statement(new, reason is not None, returning=False), params)
    settle_tasks(conn, moved, now=now)


def settle_tasks(
    conn: Connection, moved: Sequence[tuple[int, RunStatus]], *, now: datetime
) -> None:
    """Record runs' new statuses on their tasks, in the order given (a task with several
    moved runs ends with the last one's); a finished or cancelled task keeps its status.

    Only repeating tasks have several runs, and their status does not follow their runs', so
    a task ends as its last moved run alone would leave it: tasks are grouped by that status
    and written in one UPDATE per group, locked first in id order (PostgreSQL) so concurrent
    settles never lock in a cycle.
    """
    last_run = dict(moved)  # the last move of each task wins
    lock_in_order(conn, tasks, last_run)
    by_status: dict[RunStatus, list[int]] = {}
    for task_id, run_status in last_run.items():
        by_status.setdefault(run_status, []).append(task_id)
    for run_status, task_ids in by_status.items():
        settle_tasks_alike(conn, task_ids, run_status, now=now)


@cache
def _move_statement(new: RunStatus, with_reason: bool, returning: bool = True) -> Any:
    """The guarded UPDATE that moves a run to ``new``, built once per kind of move."""
    changes: dict[str, Any] = {"status": new.value}
    if new is RunStatus.RUNNING:
        changes["started_at"] = _param(runs.c.started_at)
    if new in RUN_TERMINAL:
        changes["finished_at"] = _param(runs.c.finished_at)
        # A reason given at firing ("run now", "catch-up ...") is kept, the outcome appended.
        reason = _param(runs.c.reason)
        changes["reason"] = (
            case((runs.c.reason.is_(None), reason), else_=runs.c.reason + "; " + reason)
            if with_reason
            else runs.c.reason
        )
    stmt = (
        update(runs)
        .where(
            runs.c.id.in_(bindparam("p_ids", expanding=True)),
            one_of(runs.c.status, sources_of(RUN_TRANSITIONS, new)),
        )
        .values(**changes)
    )
    return stmt.returning(runs.c.id) if returning else stmt


def move_run(
    conn: Connection, run_id: int, new: RunStatus, *, now: datetime, reason: str | None = None
) -> bool:
    """Guarded move of a run to ``new``; False if its current status does not allow it."""
    params = {"p_ids": [run_id], "p_started_at": now, "p_finished_at": now, "p_reason": reason}
    stmt = _move_statement(new, reason is not None)
    return conn.execute(stmt, params).first() is not None


def settle_task(conn: Connection, task_id: int, run_status: RunStatus, *, now: datetime) -> None:
    """Record a run's new status on its task; a finished or cancelled task keeps its status."""
    settle_tasks_alike(conn, [task_id], run_status, now=now)


def settle_tasks_alike(
    conn: Connection, task_ids: Iterable[int], run_status: RunStatus, *, now: datetime
) -> None:
    """Record the same new run status on several tasks, in one UPDATE."""
    ids = sorted(set(task_ids))
    if ids:
        prepared.rows(conn, _settled_statement(run_status), {"p_ids": ids, "p_updated_at": now})


_START_RUNS = (
    update(runs)
    .where(
        runs.c.id.in_(bindparam("p_ids", expanding=True)),
        runs.c.status == RunStatus.PENDING.value,
    )
    .values(status=RunStatus.RUNNING.value, started_at=_param(runs.c.started_at))
    .returning(runs.c.id, runs.c.task_id)
)


@cache
def _settled_statement(run_status: RunStatus) -> Any:
    """What ``settle_tasks`` writes for tasks whose latest run moved to ``run_status``, in one
    UPDATE without reading first: one-shot tasks follow their run, repeating and finished
    ones keep their status."""
    one_shot = task_status_after(TaskType.ADHOC, TaskStatus.PENDING, run_status)
    return (
        update(tasks)
        .where(tasks.c.id.in_(bindparam("p_ids", expanding=True)))
        .values(
            status=case(
                (
                    or_(
                        one_of(tasks.c.type, (t for t in TaskType if t.repeats)),
                        one_of(tasks.c.status, TASK_TERMINAL),
                    ),
                    tasks.c.status,
                ),
                else_=one_shot.value,
            ),
            last_run_status=run_status.value,
            updated_at=_param(tasks.c.updated_at),
        )
    )


def start_runs(conn: Connection, run_ids: Iterable[int], *, now: datetime) -> None:
    """Settle the runs of executions that just started: a start can only move a pending run
    to running (see ``core.rollup``), so one guarded UPDATE does what ``settle_runs`` would."""
    ids = sorted(set(run_ids))
    if not ids:
        return
    started = prepared.rows(conn, _START_RUNS, {"p_ids": ids, "p_started_at": now})
    moved = [row["task_id"] for row in started]
    settle_tasks_alike(conn, moved, RunStatus.RUNNING, now=now)
