"""Scheduler support: due tasks, firing each fire time once through the overlap policy,
queue_one releases, run now, edits, pause and resume."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, select, update

from octopus.core.enums import RunStatus, TaskStatus
from octopus.core.models import Run, Task, TaskSpec
from octopus.core.plan import exhausted
from octopus.core.timing import OverlapDecision, decide_overlap, jitter_seconds_for
from octopus.errors import Conflict, InvalidTransition
from octopus.store._dialect import lock_row
from octopus.store._fire import Dispatch, NewRun, dispatch, fire, fire_many, insert_run
from octopus.store._records import run_from_row, spec_values, task_from_row
from octopus.store._settle import one_of, settle_task, values
from octopus.store._tasks import get_task, stop_executions
from octopus.store.base import Direct, Fired, Firing, Planner, Wake
from octopus.store.tables import runs, tasks

RUN_NOW = "run now"

FIREABLE = frozenset({TaskStatus.SCHEDULED, TaskStatus.ACTIVE})
"""Task statuses whose ``next_run_at`` the scheduler honours (a paused task waits)."""


_UNPLANNED = (
    select(tasks)
    .where(one_of(tasks.c.status, FIREABLE), tasks.c.next_run_at.is_(None))
    .limit(bindparam("p_limit"))
)
_DUE = (
    select(tasks)
    .where(
        one_of(tasks.c.status, FIREABLE),
        tasks.c.next_run_at <= bindparam("p_now", type_=tasks.c.next_run_at.type),
    )
    .order_by(tasks.c.next_run_at, tasks.c.id)
    .limit(bindparam("p_limit"))
)


def due_tasks(conn: Connection, *, now: datetime, limit: int) -> list[Task]:
    """Tasks waiting to fire whose ``next_run_at`` is not planned yet (by id), then those
    whose ``next_run_at`` has come (soonest first), at most ``limit`` in all.

    Two reads rather than one with an OR, so that each is answered from the
    ``(status, next_run_at)`` index instead of reading every active task on every tick.
    """
    unplanned = sorted(
        (task_from_row(row) for row in conn.execute(_UNPLANNED, {"p_limit": limit}).mappings()),
        key=lambda task: task.id,
    )
    room = limit - len(unplanned)
    if room <= 0:
        return unplanned
    due = conn.execute(_DUE, {"p_now": now, "p_limit": room}).mappings()
    return unplanned + [task_from_row(row) for row in due]


def tick(
    conn: Connection,
    planner: Planner,
    *,
    now: datetime,
    due_by: datetime,
    limit: int,
    direct: Direct | None,
) -> tuple[Fired, datetime | None]:
    """See ``Store.tick``."""
    fired = release_waiting(conn, now=now) if any_waiting(conn) else Fired()
    firings: list[tuple[int, Firing]] = []
    for task in due_tasks(conn, now=due_by, limit=limit):
        if task.next_run_at is not None:
            firings.append((task.id, planner.firing(task, now)))
        elif (first := planner.first_fire(task, now)) is not None:
            plan_task(conn, task.id, next_run_at=first, now=now)
    if firings:
        fired |= fire_due(conn, firings, now=now, direct=direct)
    return fired, next_due(conn)


def fire_run(
    conn: Connection,
    task_id: int,
    *,
    fire_time: datetime,
    next_run_at: datetime | None,
    now: datetime,
) -> tuple[Run | None, Wake]:
    """Fire the run due at ``fire_time`` and move ``next_run_at`` on, exactly once.

    Only the caller that finds ``next_run_at == fire_time`` fires (a second replica, or a
    retry after a crash, gets None); ``UNIQUE(task_id, fire_time)`` backs this up.
    """
    firing = Firing(expected=fire_time, fire=[(fire_time, None)], next_run_at=next_run_at)
    fired = fire_due(conn, [(task_id, firing)], now=now)
    return (fired.runs[0] if fired.runs else None), fired.wake


def plan_task(conn: Connection, task_id: int, *, next_run_at: datetime, now: datetime) -> bool:
    """Set the first fire time of a task that has none (a new cron task); False if it has."""
    planned = conn.execute(
        update(tasks)
        .where(
            tasks.c.id == task_id,
            tasks.c.next_run_at.is_(None),
            tasks.c.status.in_(values(FIREABLE)),
        )
        .values(next_run_at=next_run_at, updated_at=now)
        .returning(tasks.c.id)
    ).first()
    return planned is not None


def set_paused(
    conn: Connection, task_id: int, paused: bool, *, now: datetime, next_run_at: datetime | None
) -> Task:
    """Guarded ``active -> paused`` or ``paused -> active`` (then firing at ``next_run_at``)."""
    old, new = (TaskStatus.ACTIVE, TaskStatus.PAUSED)[:: 1 if paused else -1]
    changes: dict[str, object] = {"status": new.value, "updated_at": now}
    if not paused and next_run_at is not None:
        changes["next_run_at"] = next_run_at
    moved = conn.execute(
        update(tasks)
        .where(tasks.c.id == task_id, tasks.c.status == old.value)
        .values(**changes)
        .returning(tasks.c.id)
    ).first()
    if moved is None:
        current = get_task(conn, task_id).status
        raise InvalidTransition("task", current.value, new.value)
    return get_task(conn, task_id)


ACTIVE_RUNS = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
"""Run statuses of a run that has not finished (the "previous run" of the overlap policy)."""
EDITABLE = frozenset({TaskStatus.SCHEDULED, TaskStatus.ACTIVE, TaskStatus.PAUSED})
RUNNABLE_NOW = frozenset({TaskStatus.ACTIVE, TaskStatus.PAUSED})


def fire_due(
    conn: Connection,
    firings: Sequence[tuple[int, Firing]],
    *,
    now: datetime,
    direct: Direct | None = None,
) -> Fired:
    """Apply the scheduler's decisions for due tasks, each once, on one snapshot of the agents.

    Tasks go in id order, so two replicas lock their rows in the same order. With
    ``direct``, executions that may start now are leased to agents whose claims wait
    (``Fired.handed``).
    """
    due = _claim_due(conn, firings, now=now)
    plan = Dispatch(conn, direct)
    active = _active_runs_of(conn, [task.id for task, _ in due if task.spec.type.repeats])
    run_ids: list[int] = []
    wake = Wake()
    simple: list[NewRun] = []
    progress: list[tuple[Task, _Progress, bool]] = []
    for task, firing in due:
        if _fires_once(task, firing, active.get(task.id, [])):
            [(fire_time, reason)] = firing.fire
            not_before = claimable_at(task, fire_time, now)
            simple.append(NewRun(task.id, task.spec, fire_time, reason, not_before))
            state = _Progress(count=task.run_count + 1, last=fire_time, waiting=task.waiting_run_id)
            progress.append((task, state, firing.next_run_at is None))
            continue
        ids, fired_wake = _fire_task(conn, task, firing, now=now, plan=plan)
        run_ids += ids
        wake |= fired_wake
    ids, fired_wake = fire_many(conn, simple, now=now, plan=plan)
    _record_progress(conn, progress)
    return Fired(runs=_runs(conn, run_ids + ids), wake=wake | fired_wake, handed=plan.handed)


def _fires_once(task: Task, firing: Firing, active: list[int]) -> bool:
    """Whether a due task fires exactly one run now, nothing missed or skipped: the common
    case, fired with the others in a few statements (``fire_many``)."""
    if firing.missed or len(firing.fire) != 1 or exhausted(task.spec, task.run_count):
        return False
    decision = decide_overlap(
        task.spec.overlap_policy,
        previous_active=bool(active),
        already_queued=task.waiting_run_id is not None,
    )
    return decision is OverlapDecision.FIRE


def _fire_task(
    conn: Connection, task: Task, firing: Firing, *, now: datetime, plan: Dispatch
) -> tuple[list[int], Wake]:
    """One due task the caller holds (its ``next_run_at`` moved on from ``firing.expected``),
    one fire time at a time: records the missed runs, fires the others through the overlap
    policy and ends a repeating task whose schedule ran out; the runs' ids and whom to wake."""
    run_ids = [
        insert_run(conn, task.id, fire_time=at, now=now, status=RunStatus.MISSED, reason=why)
        for at, why in firing.missed
    ]
    if run_ids:
        settle_task(conn, task.id, RunStatus.MISSED, now=now)
    state = _Progress(count=task.run_count, last=task.last_fire_time, waiting=task.waiting_run_id)
    wake = Wake()
    for fire_time, reason in firing.fire:
        if exhausted(task.spec, state.count):
            break
        run_id, fired_wake = _fire_one(conn, task, fire_time, reason, state, now=now, plan=plan)
        run_ids.append(run_id)
        wake |= fired_wake
    _record_progress(conn, [(task, state, firing.next_run_at is None)])
    return run_ids, wake


_DUE_ROWS = lock_row(
    select(tasks).where(tasks.c.id.in_(bindparam("p_ids", expanding=True))).order_by(tasks.c.id)
)
_MOVE_ON = (
    update(tasks)
    .where(
        tasks.c.id == bindparam("p_id"),
        tasks.c.next_run_at == bindparam("p_expected", type_=tasks.c.next_run_at.type),
    )
    .values(
        next_run_at=bindparam("p_next", type_=tasks.c.next_run_at.type),
        updated_at=bindparam("p_now", type_=tasks.c.updated_at.type),
    )
)


def _claim_due(
    conn: Connection, firings: Sequence[tuple[int, Firing]], *, now: datetime
) -> list[tuple[Task, Firing]]:
    """The tasks whose ``next_run_at`` is still the one each decision was made from (and that
    may fire), in id order, with ``next_run_at`` moved on: the fence that fires each fire time
    once. Their rows are read in one statement, locked on PostgreSQL (a second replica waits,
    then finds ``next_run_at`` moved); SQLite's single writer holds them anyway."""
    wanted = dict(firings)
    if not wanted:
        return []
    rows = conn.execute(_DUE_ROWS, {"p_ids": sorted(wanted)}).mappings()
    due = [
        (task, wanted[task.id])
        for task in map(task_from_row, rows)
        if task.status in FIREABLE and task.next_run_at == wanted[task.id].expected
    ]
    if due:
        moves = [
            {"p_id": t.id, "p_expected": f.expected, "p_next": f.next_run_at, "p_now": now}
            for t, f in due
        ]
        conn.execute(_MOVE_ON, moves)
    return due


@dataclass(slots=True, kw_only=True)
class _Progress:
    count: int
    last: datetime | None
    waiting: int | None


def _fire_one(
    conn: Connection,
    task: Task,
    fire_time: datetime,
    reason: str | None,
    state: _Progress,
    *,
    now: datetime,
    plan: Dispatch,
) -> tuple[int, Wake]:
    """Fire one fire time through the task's overlap policy; the run's id and whom to wake."""
    spec = task.spec
    active = _active_runs(conn, task.id) if spec.type.repeats else []
    decision = decide_overlap(
        spec.overlap_policy, previous_active=bool(active), already_queued=state.waiting is not None
    )
    state.last = fire_time
    if decision is OverlapDecision.SKIP:
        why = f"overlap: run {active[-1] if active else state.waiting} has not finished"
        skipped = RunStatus.SKIPPED
        run_id = insert_run(conn, task.id, fire_time=fire_time, now=now, status=skipped, reason=why)
        settle_task(conn, task.id, RunStatus.SKIPPED, now=now)
        return run_id, Wake()
    state.count += 1
    if decision is OverlapDecision.QUEUE:
        why = f"queued: waits for run {active[-1]} to finish"
        state.waiting = insert_run(conn, task.id, fire_time=fire_time, now=now, reason=why)
        return state.waiting, Wake()
    wake = Wake()
    if decision is OverlapDecision.CANCEL_PREVIOUS:
        _, wake = stop_executions(conn, task.id, now=now, run_ids=active)
        cancelled = "cancelled run " + ", ".join(map(str, active))
        reason = f"{reason}; {cancelled}" if reason else cancelled
    run_id, fired_wake = fire(
        conn,
        task.id,
        spec,
        fire_time=fire_time,
        now=now,
        reason=reason,
        not_before=claimable_at(task, fire_time, now),
        plan=plan,
    )
    return run_id, wake | fired_wake


def claimable_at(task: Task, fire_time: datetime, now: datetime) -> datetime:
    """When a run's executions may start: its fire time plus the task's fixed jitter."""
    jitter = jitter_seconds_for(task.id, fire_time, task.spec.jitter_seconds)
    return max(now, fire_time + timedelta(seconds=jitter))


# The statements a firing runs for each task are built once: building them per task (values,
# coercions, cache keys) cost more than running them.
_ACTIVE_RUNS = (
    select(runs.c.id)
    .where(runs.c.task_id == bindparam("p_task_id"), one_of(runs.c.status, ACTIVE_RUNS))
    .order_by(runs.c.id)
)
_ACTIVE_RUNS_OF = (
    select(runs.c.task_id, runs.c.id)
    .where(
        runs.c.task_id.in_(bindparam("p_task_ids", expanding=True)),
        one_of(runs.c.status, ACTIVE_RUNS),
    )
    .order_by(runs.c.id)
)
_PROGRESS = (
    update(tasks)
    .where(tasks.c.id == bindparam("p_id"))
    .values(
        run_count=bindparam("p_count"),
        last_fire_time=bindparam("p_last", type_=tasks.c.last_fire_time.type),
        waiting_run_id=bindparam("p_waiting"),
    )
)
_PROGRESS_ENDED = _PROGRESS.values(
    # The schedule ran to its end: the task succeeded as a schedule; how its runs went shows
    # in last_run_status (see docs/architecture.md, "Time").
    next_run_at=None,
    status=case(
        (one_of(tasks.c.status, RUNNABLE_NOW), TaskStatus.SUCCEEDED.value),
        else_=tasks.c.status,
    ),
)


def _active_runs(conn: Connection, task_id: int) -> list[int]:
    """Ids of the task's unfinished runs, oldest first (a waiting ``queue_one`` run included)."""
    return list(conn.execute(_ACTIVE_RUNS, {"p_task_id": task_id}).scalars())


def _active_runs_of(conn: Connection, task_ids: list[int]) -> dict[int, list[int]]:
    """``_active_runs`` of several tasks in one statement (a task without any is left out)."""
    found: dict[int, list[int]] = {}
    if task_ids:
        for row in conn.execute(_ACTIVE_RUNS_OF, {"p_task_ids": task_ids}):
            found.setdefault(row.task_id, []).append(row.id)
    return found


def _record_progress(conn: Connection, progress: Sequence[tuple[Task, _Progress, bool]]) -> None:
    """Store each task's run count, last fire time and waiting run; end a schedule that ran
    out (``True``: no fire time after this one), or reached its ``max_runs``."""
    writes: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for task, state, ended in progress:
        ends = task.spec.type.repeats and (ended or exhausted(task.spec, state.count))
        writes[ends].append(
            {
                "p_id": task.id,
                "p_count": state.count,
                "p_last": state.last,
                "p_waiting": state.waiting,
            }
        )
    for ends, batch in writes.items():
        if batch:
            conn.execute(_PROGRESS_ENDED if ends else _PROGRESS, batch)


def _runs(conn: Connection, run_ids: list[int]) -> list[Run]:
    if not run_ids:
        return []
    stmt = select(runs).where(runs.c.id.in_(run_ids)).order_by(runs.c.fire_time, runs.c.id)
    return [run_from_row(row) for row in conn.execute(stmt).mappings()]


_ANY_WAITING = select(tasks.c.id).where(tasks.c.waiting_run_id.is_not(None)).limit(1)


def tick_due(conn: Connection, *, due_by: datetime) -> bool:
    """Whether ``tick`` would change anything: a waiting run to release, or a task to plan
    or fire by ``due_by``."""
    return any_waiting(conn) or bool(due_tasks(conn, now=due_by, limit=1))


def any_waiting(conn: Connection) -> bool:
    """Whether some task has a ``queue_one`` run waiting for its previous run."""
    return conn.execute(_ANY_WAITING).first() is not None


def release_waiting(conn: Connection, *, now: datetime) -> Fired:
    """Start each ``queue_one`` run whose previous run has finished."""
    stmt = select(tasks).where(tasks.c.waiting_run_id.is_not(None)).order_by(tasks.c.id)
    released: list[int] = []
    wake = Wake()
    for row in conn.execute(stmt).mappings().all():
        task = task_from_row(row)
        waiting = task.waiting_run_id
        if waiting is None or [r for r in _active_runs(conn, task.id) if r != waiting]:
            continue
        cleared = conn.execute(
            update(tasks)
            .where(tasks.c.id == task.id, tasks.c.waiting_run_id == waiting)
            .values(waiting_run_id=None, updated_at=now)
            .returning(tasks.c.id)
        ).first()
        if cleared is None:
            continue
        fire_time = conn.execute(select(runs.c.fire_time).where(runs.c.id == waiting)).scalar_one()
        not_before = claimable_at(task, fire_time, now)
        wake |= dispatch(conn, waiting, task.id, task.spec, now=now, not_before=not_before)
        released.append(waiting)
    return Fired(runs=_runs(conn, released), wake=wake)


def run_now(conn: Connection, task_id: int, *, now: datetime) -> Fired:
    """Fire one extra run of an active or paused repeating task at ``now``, reason "run now".

    It bypasses the overlap policy and does not count toward ``max_runs``.
    """
    task = get_task(conn, task_id)
    if task.status not in RUNNABLE_NOW:
        raise Conflict(
            f"task {task_id} is {task.status.value}: only an active or paused interval or "
            "cron task can run now"
        )
    run_id, wake = fire(conn, task.id, task.spec, fire_time=now, now=now, reason=RUN_NOW)
    return Fired(runs=_runs(conn, [run_id]), wake=wake)


def update_task(
    conn: Connection, task_id: int, spec: TaskSpec, *, next_run_at: datetime | None, now: datetime
) -> Task:
    """Replace the spec of a scheduled, active or paused task and set its next fire time
    (a repeating task left with none has finished its schedule: ``succeeded``)."""
    changes: dict[str, Any] = {**spec_values(spec), "next_run_at": next_run_at, "updated_at": now}
    if spec.type.repeats and next_run_at is None:
        changes["status"] = TaskStatus.SUCCEEDED.value
    moved = conn.execute(
        update(tasks)
        .where(tasks.c.id == task_id, tasks.c.status.in_(values(EDITABLE)))
        .values(**changes)
        .returning(tasks.c.id)
    ).first()
    if moved is None:
        current = get_task(conn, task_id).status
        raise Conflict(
            f"task {task_id} is {current.value}: only a scheduled, active or paused task "
            "can be edited"
        )
    return get_task(conn, task_id)


def next_due(conn: Connection) -> datetime | None:
    """The soonest ``next_run_at`` of a task waiting to fire."""
    stmt = select(func.min(tasks.c.next_run_at)).where(tasks.c.status.in_(values(FIREABLE)))
    value: datetime | None = conn.execute(stmt).scalar()
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # SQLite's aggregate skips the column type
    return value
