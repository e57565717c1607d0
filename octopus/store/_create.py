"""Creating tasks, one or many per transaction: batched inserts, one agent snapshot, one
wake-up.

An adhoc task fires its run at once; an ``all`` run with nobody to go to is skipped. Creating
many tasks gives the same result as creating each in turn, but each table gets one
executemany statement instead of a handful of statements per task (and one task takes the
same path with a batch of one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select

from octopus.core.enums import (
    RunStatus,
    TaskStatus,
    TaskType,
)
from octopus.core.models import Task, TaskSpec
from octopus.core.plan import first_fire_time
from octopus.core.rollup import task_status_after
from octopus.errors import Conflict
from octopus.store._changes import changes_of
from octopus.store._dialect import insert_returning_ids
from octopus.store._fire import Dispatch, NewRun, Placement, fire_placed
from octopus.store._records import spec_values, task_from_row
from octopus.store.base import Created, CreatedTasks, Direct, Wake
from octopus.store.tables import tasks

_BY_KEY = select(tasks).where(tasks.c.idempotency_key == bindparam("p_key"))


def initial_state(spec: TaskSpec, now: datetime) -> tuple[TaskStatus, datetime | None]:
    """A new task's status and first fire time (see ``core.plan.first_fire_time``)."""
    if spec.type is TaskType.ADHOC:
        return TaskStatus.PENDING, None
    first = first_fire_time(spec, now)
    if spec.type is TaskType.SCHEDULED:
        return TaskStatus.SCHEDULED, first
    return TaskStatus.ACTIVE, first


def find_by_key(conn: Connection, key: str, request_hash: str | None) -> Task | None:
    """The task stored under an idempotency key; Conflict if it came from another request."""
    row = conn.execute(_BY_KEY, {"p_key": key}).mappings().first()
    if row is None:
        return None
    if row["request_hash"] != request_hash:
        raise Conflict(f"idempotency key '{key}' was already used for a different request")
    return task_from_row(row)


def create_task(
    conn: Connection,
    spec: TaskSpec,
    *,
    now: datetime,
    idempotency_key: str | None,
    request_hash: str | None,
    direct: Direct | None = None,
) -> Created:
    """Insert a task (or find its idempotent twin) and fire it at once if it is adhoc."""
    if idempotency_key is not None:
        existing = find_by_key(conn, idempotency_key, request_hash)
        if existing is not None:
            return Created.found([existing])
    inserted = insert_tasks(conn, [spec], [idempotency_key], request_hash, now=now, direct=direct)
    return Created(
        ids=inserted.ids,
        created=True,
        wake=inserted.wake,
        handed=inserted.handed,
        build=inserted.build,
    )


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
            return CreatedTasks.found(existing)
        keys = list(stored_keys)
    return insert_tasks(conn, specs, keys, request_hash, now=now)


def insert_tasks(
    conn: Connection,
    specs: Sequence[TaskSpec],
    keys: Sequence[str | None],
    request_hash: str | None,
    *,
    now: datetime,
    direct: Direct | None = None,
) -> CreatedTasks:
    """Insert new tasks under ``keys`` (one per spec) and fire the adhoc ones, in order, on
    one snapshot of the agents; an execution for an agent whose claim waits (``direct``) is
    leased to it here and returned in ``handed``."""
    # Adhoc runs are placed first, so that each task, run and execution is written once in
    # its final status (a leased run running, a run with nobody to go to skipped) instead of
    # inserted and then moved: two statements fewer in a create that hands its work over.
    plan = Dispatch(conn, direct) if any(_fires(spec) for spec in specs) else None
    placements = [
        plan.place(0, 0, spec, now=now) if plan is not None and _fires(spec) else None
        for spec in specs
    ]
    rows = [
        _task_row(spec, key, request_hash, now, placement)
        for spec, key, placement in zip(specs, keys, placements, strict=True)
    ]
    task_ids = insert_returning_ids(conn, tasks, rows)
    if (changes := changes_of(conn)) is not None:
        changes.tasks_created += len(task_ids)
    wake = Wake()
    if plan is not None:
        fired = [
            (NewRun(task_id, spec, fire_time=now), placement)
            for task_id, spec, placement in zip(task_ids, specs, placements, strict=True)
            if placement is not None
        ]
        new, placed = [run for run, _ in fired], [placement for _, placement in fired]
        wake = fire_placed(conn, new, placed, now=now, plan=plan)[1]
    handed = plan.handed if plan else []

    def build() -> list[Task]:
        # From what was just written rather than read back: the read cost a bulk create a
        # sixth of its time, holding the single writer (claims wait behind it).
        pairs = zip(task_ids, specs, rows, strict=True)
        return [_as_stored(task_id, spec, row, now=now) for task_id, spec, row in pairs]

    return CreatedTasks(ids=task_ids, created=True, wake=wake, handed=handed, build=build)


def _fires(spec: TaskSpec) -> bool:
    return spec.type is TaskType.ADHOC


def _task_row(
    spec: TaskSpec,
    key: str | None,
    request_hash: str | None,
    now: datetime,
    placement: Placement | None,
) -> dict[str, Any]:
    """A new task's row; an adhoc one (``placement``: where its run goes) as its run leaves it."""
    status, next_run_at = initial_state(spec, now)
    last_run: RunStatus | None = None
    if placement is not None:
        last_run = placement.run_status
        status = task_status_after(spec.type, status, last_run)
    return {
        **spec_values(spec),
        "status": status.value,
        "last_run_status": None if last_run is None else last_run.value,
        "next_run_at": next_run_at,
        "idempotency_key": key,
        "request_hash": request_hash if key is not None else None,
        "created_at": now,
        "updated_at": now,
    }


def _as_stored(task_id: int, spec: TaskSpec, row: dict[str, Any], *, now: datetime) -> Task:
    """The task as its row now reads: times in UTC, JSON as it comes back."""
    status, last = TaskStatus(row["status"]), row["last_run_status"]
    return Task(
        id=task_id,
        spec=_stored_spec(spec),
        status=status,
        last_run_status=None if last is None else RunStatus(last),
        next_run_at=_utc(row["next_run_at"]),
        created_at=now.astimezone(UTC),
        updated_at=now.astimezone(UTC),
    )


def _stored_spec(spec: TaskSpec) -> TaskSpec:
    """``spec`` as its columns give it back (``spec_from_row``)."""
    return replace(
        spec,
        args=orjson.loads(orjson.dumps(spec.args)),
        kwargs=orjson.loads(orjson.dumps(spec.kwargs)),
        labels=dict(spec.labels),
        timeout_seconds=_float(spec.timeout_seconds),
        retry_backoff_seconds=float(spec.retry_backoff_seconds),
        run_at=_utc(spec.run_at),
        interval_seconds=_float(spec.interval_seconds),
        start_at=_utc(spec.start_at),
        end_at=_utc(spec.end_at),
        jitter_seconds=float(spec.jitter_seconds),
    )


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)
