"""Firing a run: snapshot the eligible agents and queue its executions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from octopus.core.dispatch import AgentLoad, eligible, least_loaded
from octopus.core.enums import AgentStatus, ExecutionStatus, Ownership, RunStatus
from octopus.core.models import TaskSpec
from octopus.store._settle import move_run, settle_task, values, wake_for
from octopus.store.base import Wake
from octopus.store.tables import agents, executions, runs

NO_ELIGIBLE_AGENT = "no eligible agent"
ACTIVE = frozenset({ExecutionStatus.QUEUED, ExecutionStatus.RUNNING})
"""Execution statuses that count toward an agent's load."""


def agent_loads(conn: Connection) -> list[AgentLoad]:
    """Every agent that is not revoked, with the executions queued or running on it."""
    assigned = (
        select(executions.c.agent, func.count().label("n"))
        .where(executions.c.status.in_(values(ACTIVE)), executions.c.agent.is_not(None))
        .group_by(executions.c.agent)
        .subquery()
    )
    stmt = (
        select(
            agents.c.name,
            agents.c.status,
            agents.c.labels,
            agents.c.concurrency,
            func.coalesce(assigned.c.n, 0).label("assigned"),
        )
        .outerjoin(assigned, assigned.c.agent == agents.c.name)
        .where(agents.c.revoked_at.is_(None))
    )
    return [
        AgentLoad(
            name=row.name,
            status=AgentStatus(row.status),
            labels=row.labels,
            concurrency=row.concurrency,
            assigned=row.assigned,
        )
        for row in conn.execute(stmt)
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
    conn: Connection, task_id: int, spec: TaskSpec, *, fire_time: datetime, now: datetime
) -> tuple[int, Wake]:
    """Insert a run of the task at ``fire_time`` with its executions; the run's id and whom to wake.

    A run with nobody to go to is ``skipped`` with reason "no eligible agent".
    """
    run_id: int = conn.execute(
        insert(runs)
        .values(
            task_id=task_id,
            fire_time=fire_time,
            status=RunStatus.PENDING.value,
            created_at=now,
        )
        .returning(runs.c.id)
    ).scalar_one()
    targets = targets_for(conn, spec)
    if not targets:
        move_run(conn, run_id, RunStatus.SKIPPED, now=now, reason=NO_ELIGIBLE_AGENT)
        settle_task(conn, task_id, RunStatus.SKIPPED, now=now)
        return run_id, Wake()
    rows = [
        {
            "run_id": run_id,
            "task_id": task_id,
            "ownership": spec.ownership.value,
            "agent": agent,
            "attempt": 1,
            "status": ExecutionStatus.QUEUED.value,
            "not_before": now,
            "queued_at": now,
        }
        for agent in targets
    ]
    conn.execute(insert(executions), rows)
    settle_task(conn, task_id, RunStatus.PENDING, now=now)
    wake = Wake()
    for agent in targets:
        wake |= wake_for(agent)
    return run_id, wake
