"""Firing a run: snapshot the eligible agents and queue its executions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from octopus.core.dispatch import AgentLoad, eligible, least_loaded
from octopus.core.enums import AgentStatus, ExecutionStatus, Ownership, RunStatus
from octopus.core.models import TaskSpec
from octopus.core.states import RUN_TERMINAL
from octopus.store._settle import move_run, settle_task, values, wake_for
from octopus.store.base import Wake
from octopus.store.tables import agents, executions, runs

NO_ELIGIBLE_AGENT = "no eligible agent"
ACTIVE = frozenset({ExecutionStatus.QUEUED, ExecutionStatus.RUNNING})
"""Execution statuses that count toward an agent's load."""


_ASSIGNED = (
    select(executions.c.agent, func.count().label("n"))
    .where(executions.c.status.in_(values(ACTIVE)), executions.c.agent.is_not(None))
    .group_by(executions.c.agent)
    .subquery()
)
_AGENT_LOADS = (
    select(
        agents.c.name,
        agents.c.status,
        agents.c.labels,
        agents.c.concurrency,
        func.coalesce(_ASSIGNED.c.n, 0).label("assigned"),
    )
    .outerjoin(_ASSIGNED, _ASSIGNED.c.agent == agents.c.name)
    .where(agents.c.revoked_at.is_(None))
)


def agent_loads(conn: Connection) -> list[AgentLoad]:
    """Every agent that is not revoked, with the executions queued or running on it."""
    return [
        AgentLoad(
            name=row.name,
            status=AgentStatus(row.status),
            labels=row.labels,
            concurrency=row.concurrency,
            assigned=row.assigned,
        )
        for row in conn.execute(_AGENT_LOADS)
    ]


def targets_for(conn: Connection, spec: TaskSpec) -> list[str | None]:
    """Whom a new run of ``spec`` goes to; None stands for an unassigned ``anyone`` execution."""
    if spec.ownership is Ownership.SPECIFIC:
        return [spec.target]
    loads = agent_loads(conn)
    if spec.ownership is Ownership.ALL:
        return [agent.name for agent in eligible(loads, spec.labels)]
    return [least_loaded(loads, spec.labels)]


def fire(
    conn: Connection,
    task_id: int,
    spec: TaskSpec,
    *,
    fire_time: datetime,
    now: datetime,
    reason: str | None = None,
    not_before: datetime | None = None,
) -> tuple[int, Wake]:
    """Insert a run of the task at ``fire_time`` with its executions; the run's id and whom to wake.

    A run with nobody to go to is ``skipped`` with reason "no eligible agent". Its executions
    become claimable at ``not_before`` (default: now).
    """
    run_id = insert_run(conn, task_id, fire_time=fire_time, now=now, reason=reason)
    return run_id, dispatch(conn, run_id, task_id, spec, now=now, not_before=not_before)


def insert_run(
    conn: Connection,
    task_id: int,
    *,
    fire_time: datetime,
    now: datetime,
    status: RunStatus = RunStatus.PENDING,
    reason: str | None = None,
) -> int:
    """Insert one run (``UNIQUE(task_id, fire_time)`` refuses a second); its id."""
    finished = now if status in RUN_TERMINAL else None
    run_id: int = conn.execute(
        insert(runs)
        .values(
            task_id=task_id,
            fire_time=fire_time,
            status=status.value,
            reason=reason,
            created_at=now,
            finished_at=finished,
        )
        .returning(runs.c.id)
    ).scalar_one()
    return run_id


def dispatch(
    conn: Connection,
    run_id: int,
    task_id: int,
    spec: TaskSpec,
    *,
    now: datetime,
    not_before: datetime | None = None,
) -> Wake:
    """Queue the executions of a pending run: snapshot the eligible agents now."""
    targets = targets_for(conn, spec)
    if not targets:
        move_run(conn, run_id, RunStatus.SKIPPED, now=now, reason=NO_ELIGIBLE_AGENT)
        settle_task(conn, task_id, RunStatus.SKIPPED, now=now)
        return Wake()
    rows = [
        execution_row(run_id, task_id, spec, agent, now=now, not_before=not_before)
        for agent in targets
    ]
    conn.execute(insert(executions), rows)
    settle_task(conn, task_id, RunStatus.PENDING, now=now)
    wake = Wake()
    for agent in targets:
        wake |= wake_for(agent)
    return wake


def execution_row(
    run_id: int,
    task_id: int,
    spec: TaskSpec,
    agent: str | None,
    *,
    now: datetime,
    not_before: datetime | None = None,
) -> dict[str, Any]:
    """The first, queued attempt of a run on ``agent`` (None: the first matching claimer)."""
    return {
        "run_id": run_id,
        "task_id": task_id,
        "ownership": spec.ownership.value,
        "agent": agent,
        "attempt": 1,
        "status": ExecutionStatus.QUEUED.value,
        "not_before": not_before or now,
        "queued_at": now,
    }
