"""Tasks: create, list, show, edit, pause, resume, run now, cancel, and their executions."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from octopus.core.enums import Ownership, TaskType
from octopus.core.models import Task, TaskSpec
from octopus.core.plan import first_fire_time, next_after
from octopus.errors import Conflict, NotFound, ValidationFailed
from octopus.schemas.common import IDENTIFIER_PATTERN, MAX_ID, Page
from octopus.schemas.tasks import (
    EDITABLE_FIELDS,
    ExecutionRead,
    RunRead,
    RunStatusIn,
    TaskBulkCreate,
    TaskBulkIds,
    TaskBulkRead,
    TaskCreate,
    TaskDetail,
    TaskRead,
    TaskStatusIn,
    TaskUpdate,
)
from octopus.server.auth import Admin, AdminActor, State
from octopus.server.clock import utcnow
from octopus.server.errors import validation_details
from octopus.server.present import execution_read, run_read, runs_read, task_detail, task_read
from octopus.server.short_writes import SHORT_WRITE_ROWS, store_write
from octopus.server.state import ServerState
from octopus.store.base import Created

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"], dependencies=[Admin])
CREATE_ROUTE = router.prefix

TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The task's id.")]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes a retried create safe: the same key and body return the same task.",
    ),
]

Prefer = Annotated[
    str | None,
    Header(
        alias="Prefer",
        max_length=200,
        description=(
            "`return=minimal` (RFC 7240): answer with the new tasks' ids only, "
            '`{"ids": [...]}`, instead of every task in full.'
        ),
    ),
]
MINIMAL = "return=minimal"


def wants_minimal(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header asks for ``return=minimal`` (preferences are separated by
    commas, may carry ``;`` parameters and a quoted value, and are case-insensitive)."""
    if prefer is None:
        return False
    for preference in prefer.split(","):
        token, _, value = preference.split(";", 1)[0].partition("=")
        if token.strip().lower() == "return" and value.strip().strip('"').lower() == "minimal":
            return True
    return False


_SPEC_FIELDS = tuple(name for name in TaskCreate.model_fields if name != "name")


def _spec(body: TaskCreate) -> TaskSpec:
    # Field by field: model_dump, which copies every value, cost a create 0.03 ms more after
    # an idle pause here.
    fields = {name: getattr(body, name) for name in _SPEC_FIELDS}
    return TaskSpec(name=body.name or f"{body.plugin}.{body.action}", **fields)


def _request_hash(body: TaskCreate | TaskBulkCreate) -> str:
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _validate(body: TaskCreate, state: State, known_agents: set[str] | None = None) -> None:
    """Check the call against the action's signature and that a target is enrolled.

    ``known_agents`` remembers targets already found, so a bulk create looks each up once.
    """
    state.plugins.check_call(body.plugin, body.action, body.args, body.kwargs)
    target = body.target
    if target is None or (known_agents is not None and target in known_agents):
        return
    try:
        state.store.get_agent(target)
    except NotFound:
        raise ValidationFailed("target", f"no agent named '{target}'") from None
    if known_agents is not None:
        known_agents.add(target)


def _execution_rows(body: TaskCreate) -> int:
    """How many executions creating ``body`` writes: one per agent for an adhoc ``all`` task
    (counted as too many to write on the event loop), one for another adhoc task."""
    if body.type is not TaskType.ADHOC:
        return 0
    return SHORT_WRITE_ROWS + 1 if body.ownership is Ownership.ALL else 1


def _check_times(spec: TaskSpec, now: datetime) -> None:
    """Refuse a repeating schedule that would never fire."""
    if spec.end_at is not None and spec.end_at <= now:
        raise ValidationFailed("end_at", "is already past")
    if spec.type.repeats and first_fire_time(spec, now) is None:
        raise ValidationFailed("end_at", "the schedule has no fire time before end_at")


def _create(
    body: TaskCreate, state: ServerState, idempotency_key: str | None, actor: str
) -> Created:
    """Validate and store in one thread hop (each hop costs dispatch latency a wake-up); an
    execution leased to a waiting claim in the transaction is handed to it at once."""
    _validate(body, state)
    spec, now = _spec(body), utcnow()
    _check_times(spec, now)
    with state.notifier.handing(state.lease_seconds) as handoff:
        created = state.store.create_task(
            spec,
            now=now,
            idempotency_key=idempotency_key,
            request_hash=_request_hash(body) if idempotency_key else None,
            actor=actor,
            direct=handoff,
        )
        handoff.handed = created.handed
    return created


@router.post("", status_code=201)
async def create_task(
    body: TaskCreate, state: State, actor: AdminActor, idempotency_key: IdempotencyKey = None
) -> TaskRead:
    """Create a task. An adhoc task fires at once; a scheduled task at `run_at`; an interval
    task every `interval_seconds` from `start_at` (default now); a cron task on `cron` in
    `timezone`. The answer includes `next_run_at`.

    The plugin, action and arguments are checked against the action's signature, and a
    `specific` target must be an enrolled agent. With an `Idempotency-Key` header, sending the
    same body again returns the task created the first time; another body with the same key
    is refused with 409.
    """
    return created_answer(state, await store_create(state, body, idempotency_key, actor))


async def store_create(
    state: ServerState, body: TaskCreate, idempotency_key: str | None, actor: str
) -> Created:
    """Validate and store a new task (on the event loop when that is quick, see
    ``store_write``); an error here has stored nothing."""
    created = await store_write(
        state.store, _execution_rows(body), _create, body, state, idempotency_key, actor
    )
    if created.handed:
        await asyncio.sleep(0)
    return created


def created_answer(state: ServerState, created: Created) -> TaskRead:
    """Wake whom the new task concerns and answer with it (the task is stored already)."""
    state.notifier.wake(created.wake)
    if created.task.spec.type is not TaskType.ADHOC:  # an adhoc task fired already
        state.schedule_changed()
    return task_read(created.task)


def _bulk_specs(body: TaskBulkCreate, state: State, now: datetime) -> list[TaskSpec]:
    """Each item checked as a single create is; an error names the item's index."""
    known_agents: set[str] = set()
    specs = []
    for index, item in enumerate(body.tasks):
        try:
            _validate(item, state, known_agents)
            spec = _spec(item)
            _check_times(spec, now)
        except ValidationFailed as error:
            raise ValidationFailed(f"tasks.{index}.{error.field}", error.problem) from None
        specs.append(spec)
    return specs


@router.post("/bulk", status_code=201)
async def create_tasks(
    body: TaskBulkCreate,
    state: State,
    actor: AdminActor,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> TaskBulkRead | TaskBulkIds:
    """Create 1 to 1,000 tasks at once, atomically: all of them are stored, or none.

    Each item is a task body exactly as for `POST /api/v1/tasks` and is checked the same way;
    the first bad item is refused naming its index (`tasks.3.plugin`) and nothing is stored.
    The answer lists the created tasks in the order sent; with `Prefer: return=minimal` it
    lists only their ids (`{"ids": [...]}`, and `Preference-Applied: return=minimal`). With an
    `Idempotency-Key` header, sending the same body again returns the same tasks; another body
    with that key is 409.
    """
    minimal = wants_minimal(prefer)
    now = utcnow()
    specs = await run_in_threadpool(_bulk_specs, body, state, now)
    created = await run_in_threadpool(
        state.store.create_tasks,
        specs,
        now=now,
        idempotency_key=idempotency_key,
        request_hash=_request_hash(body) if idempotency_key else None,
        actor=actor,
    )
    state.notifier.wake(created.wake)
    if any(spec.type is not TaskType.ADHOC for spec in specs):
        state.schedule_changed()
    if minimal:
        response.headers["Preference-Applied"] = MINIMAL
        return TaskBulkIds(ids=created.ids)
    # Up to a thousand records built after the transaction, off the event loop.
    return await run_in_threadpool(
        lambda: TaskBulkRead(tasks=[task_read(task) for task in created.tasks])
    )


@router.get("")
def list_tasks(
    state: State,
    status: Annotated[TaskStatusIn | None, Query(description="Only tasks in this status.")] = None,
    type: Annotated[TaskType | None, Query(description="Only tasks of this type.")] = None,
    plugin: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN.pattern)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[TaskRead]:
    """List tasks, newest first, optionally filtered by status, type and plugin."""
    tasks, total = state.store.list_tasks(
        status=status, type=type, plugin=plugin, limit=limit, offset=offset
    )
    return Page[TaskRead](
        items=[task_read(t) for t in tasks], total=total, limit=limit, offset=offset
    )


@router.get("/{task_id}")
def get_task(task_id: TaskId, state: State) -> TaskDetail:
    """One task with its next five fire times (`upcoming`, in the task's time zone) and its
    most recent runs, each with its executions and their roll-up."""
    task = state.store.get_task(task_id)
    runs = state.store.list_runs(task_id, limit=20)
    executions, _ = state.store.list_executions(run_ids=[run.id for run in runs], limit=10_000)
    return task_detail(task, runs, executions)


@router.get("/{task_id}/runs")
def list_task_runs(
    task_id: TaskId,
    state: State,
    status: Annotated[RunStatusIn | None, Query(description="Only runs in this status.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[RunRead]:
    """A task's runs, newest fire time first, each with its executions and their roll-up."""
    runs = state.store.list_runs(task_id, limit=limit, offset=offset, status=status)
    total = state.store.count_runs(task_id, status=status)
    executions, _ = state.store.list_executions(run_ids=[run.id for run in runs], limit=100_000)
    return Page[RunRead](items=runs_read(runs, executions), total=total, limit=limit, offset=offset)


@router.get("/{task_id}/executions")
def list_task_executions(
    task_id: TaskId, state: State, limit: Limit = 100, offset: Offset = 0
) -> Page[ExecutionRead]:
    """A task's executions, newest first."""
    executions, total = state.store.list_executions(task_id=task_id, limit=limit, offset=offset)
    return Page[ExecutionRead](
        items=[execution_read(e) for e in executions], total=total, limit=limit, offset=offset
    )


@router.post("/{task_id}/cancel")
async def cancel_task(task_id: TaskId, state: State, actor: AdminActor) -> TaskRead:
    """Cancel a task: queued executions are cancelled, running ones are stopped on their agents.

    409 if the task already finished.
    """
    task, wake = await run_in_threadpool(
        state.store.cancel_task, task_id, now=utcnow(), actor=actor
    )
    state.notifier.wake(wake)
    return task_read(task)


@router.delete("/{task_id}", status_code=204)
async def delete_task(task_id: TaskId, state: State, actor: AdminActor) -> None:
    """Delete a finished task with its runs, executions and logs.

    409 while the task is unfinished or any of its executions is still stopping; cancel it
    first. 404 if there is no such task.
    """
    await run_in_threadpool(state.store.delete_task, task_id, now=utcnow(), actor=actor)


def _edited(task: Task, body: TaskUpdate) -> TaskSpec:
    """The task's spec with the changes applied, checked like a new task of its type."""
    spec = task.spec
    current = {name: getattr(spec, name) for name in EDITABLE_FIELDS}
    merged = {
        **current,
        "plugin": spec.plugin,
        "action": spec.action,
        "type": spec.type,
        "ownership": spec.ownership,
        "target": spec.target,
        **body.model_dump(exclude_unset=True),
    }
    try:
        return _spec(TaskCreate.model_validate(merged))
    except ValidationError as error:
        [first, *_] = validation_details(error.errors())
        raise ValidationFailed(first.field or "body", first.message) from None


def _edit(task_id: int, body: TaskUpdate, state: State, actor: str) -> Task:
    task = state.store.get_task(task_id)
    if not task.spec.type.repeats and task.spec.type is not TaskType.SCHEDULED:
        raise Conflict(f"task {task_id} is adhoc: it has no schedule to edit")
    spec = _edited(task, body)
    changes = body.model_fields_set
    if changes & {"args", "kwargs"}:
        state.plugins.check_call(spec.plugin, spec.action, spec.args, spec.kwargs)
    now = utcnow()
    if "end_at" in changes:
        _check_times(spec, now)
    next_run_at = next_after(spec, created_at=task.created_at, run_count=task.run_count, after=now)
    if spec.type is TaskType.INTERVAL and spec.start_at is not None and spec.start_at > now:
        next_run_at = spec.start_at
    return state.store.update_task(task_id, spec, next_run_at=next_run_at, now=now, actor=actor)


@router.patch("/{task_id}")
async def update_task(
    task_id: TaskId, body: TaskUpdate, state: State, actor: AdminActor
) -> TaskRead:
    """Edit a scheduled, interval or cron task: its schedule, limits, policies, arguments and
    other settings. Fields left out keep their value; the result is checked like a new task.

    The change takes effect at once: `next_run_at` is recomputed from now. 409 if the task
    finished or was cancelled (or is adhoc); 422 naming the field for a bad value.
    """
    task = await run_in_threadpool(_edit, task_id, body, state, actor)
    state.schedule_changed()
    return task_read(task)


@router.post("/{task_id}/pause")
async def pause_task(task_id: TaskId, state: State, actor: AdminActor) -> TaskRead:
    """Pause an active interval or cron task: nothing fires until it is resumed.

    409 for any other task or status.
    """
    task = await run_in_threadpool(state.store.pause_task, task_id, now=utcnow(), actor=actor)
    state.schedule_changed()
    return task_read(task)


@router.post("/{task_id}/resume")
async def resume_task(task_id: TaskId, state: State, actor: AdminActor) -> TaskRead:
    """Resume a paused interval or cron task. Fire times that passed while it was paused are
    recorded as `missed` runs and handled by its missed-run policy (by default one catch-up
    run). 409 unless the task is paused.
    """
    task = await run_in_threadpool(state.store.resume_task, task_id, now=utcnow(), actor=actor)
    state.schedule_changed()
    return task_read(task)


@router.post("/{task_id}/run", status_code=201)
async def run_task_now(task_id: TaskId, state: State, actor: AdminActor) -> RunRead:
    """Run an active or paused interval or cron task now, once, besides its schedule.

    The run has `fire_time` now and reason "run now"; it ignores the overlap policy and does
    not count toward `max_runs`. 409 for any other task or status.
    """
    fired = await run_in_threadpool(state.store.run_now, task_id, now=utcnow(), actor=actor)
    state.notifier.wake(fired.wake)
    [run] = fired.runs
    executions, _ = await run_in_threadpool(state.store.list_executions, run_ids=[run.id])
    return run_read(run, executions)
