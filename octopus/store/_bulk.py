"""Creating many tasks in one transaction: batched inserts, one agent snapshot, one wake-up.

The result is the same as creating each task with ``_tasks.create_task`` in turn (an adhoc
task fires its run at once; ``all`` runs with nobody to go to are skipped), but each table gets
one executemany statement instead of a handful of statements per task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from octopus.core.dispatch import eligible, least_loaded
from octopus.core.enums import Ownership, RunStatus, TaskStatus, TaskType
from octopus.core.models import Task, TaskSpec
from octopus.core.rollup import task_status_after
from octopus.errors import Conflict
from octopus.store._changes import changes_of
from octopus.store._fire import NO_ELIGIBLE_AGENT, agent_loads, execution_row
from octopus.store._records import spec_values, task_from_row
from octopus.store._settle import move_run, settle_task, wake_for
from octopus.store._tasks import initial_state
from octopus.store.base import CreatedTasks, Wake
from octopus.store.tables import executions, runs, tasks

FIRED_STATUS = task_status_after(TaskType.ADHOC, TaskStatus.PENDING, RunStatus.PENDING)
"""An adhoc task's status once its run is pending (what ``settle_task`` would write)."""


def item_keys(idempotency_key: str, count: int) -> list[str]:
    """The idempotency key stored on each task of a bulk create.

    A space never occurs in a request's key (the header allows printable ASCII without
    spaces), so these never collide with the key of a single create.
    """
    return [f"{idempotency_key} {index}" for index in range(count)]


def find_batch(conn: Connection, keys: Sequence[str], request_hash: str | None) -> list[Task]:
    """The tasks stored under a bulk create's keys, in order; Conflict if another request."""
    stmt = select(tasks).where(tasks.c.idempotency_key.in_(list(keys)))
    found = {row["idempotency_key"]: row for row in conn.execute(stmt).mappings()}
    if not found:
        return []
    if len(found) != len(keys) or any(r["request_hash"] != request_hash for r in found.values()):
        key = keys[0].rsplit(" ", 1)[0]
        raise Conflict(f"idempotency key '{key}' was already used for a different request")
    return [task_from_row(found[key]) for key in keys]


def create_tasks(
    conn: Connection,
    specs: Sequence[TaskSpec],
    *,
    now: datetime,
    idempotency_key: str | None,
    request_hash: str | None,
) -> CreatedTasks:
    """Insert tasks (or find their idempotent twins) and fire the adhoc ones, in order."""
    keys: list[str | None] = [None] * len(specs)
    if idempotency_key is not None:
        stored_keys = item_keys(idempotency_key, len(specs))
        existing = find_batch(conn, stored_keys, request_hash)
        if existing:
            return CreatedTasks(tasks=existing, created=False)
        keys = list(stored_keys)
    rows = [_task_row(spec, key, request_hash, now) for spec, key in zip(specs, keys, strict=True)]
    task_ids = _insert_ids(conn, tasks, rows)
    if (changes := changes_of(conn)) is not None:
        changes.tasks_created += len(task_ids)
    fired = [(tid, spec) for tid, spec in zip(task_ids, specs, strict=True) if _fires(spec)]
    wake = _fire_all(conn, fired, now=now) if fired else Wake()
    stored = conn.execute(select(tasks).where(tasks.c.id.in_(task_ids))).mappings()
    by_id = {row["id"]: task_from_row(row) for row in stored}
    return CreatedTasks(tasks=[by_id[tid] for tid in task_ids], created=True, wake=wake)


def _fires(spec: TaskSpec) -> bool:
    return spec.type is TaskType.ADHOC


def _task_row(
    spec: TaskSpec, key: str | None, request_hash: str | None, now: datetime
) -> dict[str, Any]:
    status, next_run_at = initial_state(spec, now)
    fires = _fires(spec)
    return {
        **spec_values(spec),
        # An adhoc task's run is pending from the start; skipped ones are corrected later.
        "status": (FIRED_STATUS if fires else status).value,
        "last_run_status": RunStatus.PENDING.value if fires else None,
        "next_run_at": next_run_at,
        "idempotency_key": key,
        "request_hash": request_hash if key is not None else None,
        "created_at": now,
        "updated_at": now,
    }


def _insert_ids(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` in one executemany and return their ids in the order given."""
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [row.id for row in conn.execute(stmt, rows)]


def _fire_all(conn: Connection, fired: list[tuple[int, TaskSpec]], *, now: datetime) -> Wake:
    """One pending run per adhoc task and its executions, dispatched on one agent snapshot."""
    run_rows = [
        {"task_id": tid, "fire_time": now, "status": RunStatus.PENDING.value, "created_at": now}
        for tid, _ in fired
    ]
    run_ids = _insert_ids(conn, runs, run_rows)
    plan = _Dispatch(conn)
    execution_rows: list[dict[str, Any]] = []
    skipped: list[tuple[int, int]] = []
    wake = Wake()
    for run_id, (task_id, spec) in zip(run_ids, fired, strict=True):
        targets = plan.targets(spec)
        if not targets:
            skipped.append((run_id, task_id))
        execution_rows += [
            execution_row(run_id, task_id, spec, agent, now=now) for agent in targets
        ]
        for agent in targets:
            wake |= wake_for(agent)
    if execution_rows:
        conn.execute(insert(executions), execution_rows)
    for run_id, task_id in skipped:
        move_run(conn, run_id, RunStatus.SKIPPED, now=now, reason=NO_ELIGIBLE_AGENT)
        settle_task(conn, task_id, RunStatus.SKIPPED, now=now)
    return wake


class _Dispatch:
    """``_fire.targets_for`` over one snapshot of the agents, counting the work handed out so
    far in this batch, so ``anyone`` tasks spread over the agents as they would one by one."""

    def __init__(self, conn: Connection) -> None:
        self._loads = {load.name: load for load in agent_loads(conn)}

    def targets(self, spec: TaskSpec) -> list[str | None]:
        """Whom a new run of ``spec`` goes to; None stands for an unassigned execution."""
        names: list[str | None]
        if spec.ownership is Ownership.SPECIFIC:
            names = [spec.target]
        elif spec.ownership is Ownership.ALL:
            names = [a.name for a in eligible(self._loads.values(), spec.labels)]
        else:
            names = [least_loaded(self._loads.values(), spec.labels)]
        for name in names:
            if name is not None and name in self._loads:
                load = self._loads[name]
                self._loads[name] = replace(load, assigned=load.assigned + 1)
        return names
