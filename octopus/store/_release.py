"""An agent handing back executions it claimed ahead and never started."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, select, update

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus
from octopus.core.models import ExecutionError
from octopus.core.states import EXECUTION_RELEASES, RUN_RELEASES, check_transition
from octopus.store._dialect import lock_row
from octopus.store._settle import finish_executions, rolled_up, settle_tasks_alike, wake_for
from octopus.store.base import Finished, Outcome, Wake
from octopus.store.tables import executions, runs

_HELD = lock_row(
    select(
        executions.c.id,
        executions.c.run_id,
        executions.c.agent,
        executions.c.status,
        executions.c.ownership,
        executions.c.cancel_requested,
    )
    .where(executions.c.id.in_(bindparam("p_ids", expanding=True)))
    .order_by(executions.c.id)
)
_REQUEUE = (
    update(executions)
    .where(
        executions.c.id.in_(bindparam("p_ids", expanding=True)),
        executions.c.agent == bindparam("p_agent"),
        executions.c.status == ExecutionStatus.RUNNING.value,
    )
    .values(
        status=ExecutionStatus.QUEUED.value,
        # An ``anyone`` execution goes back to whoever claims it next; one assigned to this
        # agent (``all``, ``specific``) stays its own.
        agent=case(
            (executions.c.ownership == Ownership.ANYONE.value, None), else_=executions.c.agent
        ),
        started_at=None,
        lease_expires_at=None,
    )
)
_UNSTART_RUNS = (
    update(runs)
    .where(
        runs.c.id.in_(bindparam("p_ids", expanding=True)),
        runs.c.status == RunStatus.RUNNING.value,
    )
    .values(status=RunStatus.PENDING.value, started_at=None)
)
_CANCELLED_UNSTARTED = ExecutionError(
    type="Cancelled", message="cancelled before it started; handed back by its agent"
)


def release_executions(
    conn: Connection, agent: str, execution_ids: Sequence[int], *, now: datetime
) -> tuple[list[Finished], Wake]:
    """Queue again the executions ``agent`` holds and says it never started, answered in order.

    Each is fenced on its own, as a report is: one the agent does not hold while it runs is
    refused (``not_found`` or ``fenced``) and left as it is. A released execution keeps its
    attempt number (it was never tried); an ``anyone`` one is unassigned. One already marked
    for stopping ends ``cancelled`` instead, as a queued execution does when its task is
    cancelled. A run none of whose executions has started is pending again, and so is its
    one-shot task.
    """
    check_transition(
        EXECUTION_RELEASES, "execution", ExecutionStatus.RUNNING, ExecutionStatus.QUEUED
    )
    held = {row.id: row for row in conn.execute(_HELD, {"p_ids": sorted(set(execution_ids))})}
    answers: dict[int, Finished] = {}
    requeue: list[int] = []
    cancel: list[int] = []
    for execution_id in dict.fromkeys(execution_ids):
        row = held.get(execution_id)
        if row is None:
            answers[execution_id] = Finished(
                execution_id=execution_id, refusal="not_found", reason="no such execution"
            )
        elif row.status != ExecutionStatus.RUNNING.value or row.agent != agent:
            reason = f"execution {row.id} is {row.status} on {row.agent or 'no agent'}, "
            answers[execution_id] = Finished(
                execution_id=execution_id,
                refusal="fenced",
                reason=reason + f"not running on {agent}",
            )
        elif row.cancel_requested:
            cancel.append(execution_id)
        else:
            requeue.append(execution_id)
            answers[execution_id] = Finished(
                execution_id=execution_id, status=ExecutionStatus.QUEUED
            )
    wake = Wake()
    if requeue:
        conn.execute(_REQUEUE, {"p_ids": requeue, "p_agent": agent})
        _unstart_runs(conn, {held[i].run_id for i in requeue}, now=now)
        for execution_id in requeue:
            row = held[execution_id]
            wake |= wake_for(None if row.ownership == Ownership.ANYONE.value else agent)
    if cancel:
        outcome = Outcome(
            status=ExecutionStatus.CANCELLED, error=_CANCELLED_UNSTARTED, finished_at=now
        )
        ended, cancel_wake = finish_executions(
            conn, agent, [(execution_id, outcome) for execution_id in cancel], now=now
        )
        answers.update((item.execution_id, item) for item in ended)
        wake |= cancel_wake
    return [answers[execution_id] for execution_id in execution_ids], wake


def _unstart_runs(conn: Connection, run_ids: set[int], *, now: datetime) -> None:
    """Move back to pending the runs whose executions, after the release, add up to pending
    (none has started), and their one-shot tasks with them."""
    back = [
        run
        for run, rollup in rolled_up(conn, run_ids)
        if rollup.status in RUN_RELEASES.get(run.status, frozenset())
    ]
    if back:
        params: dict[str, Any] = {"p_ids": [run.id for run in back]}
        conn.execute(_UNSTART_RUNS, params)
        settle_tasks_alike(conn, [run.task_id for run in back], RunStatus.PENDING, now=now)
