"""Tasks: create, list, show, cancel, and their executions."""

from __future__ import annotations

import hashlib
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Path, Query
from starlette.concurrency import run_in_threadpool

from octopus.core.enums import TaskType
from octopus.core.models import TaskSpec
from octopus.errors import NotFound, ValidationFailed
from octopus.schemas.common import MAX_ID, Page
from octopus.schemas.tasks import ExecutionRead, TaskCreate, TaskDetail, TaskRead, TaskStatusIn
from octopus.server.auth import Admin, State
from octopus.server.clock import utcnow
from octopus.server.present import execution_read, task_detail, task_read

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"], dependencies=[Admin])

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

_SUPPORTED_TYPES = frozenset({TaskType.ADHOC})


def _spec(body: TaskCreate) -> TaskSpec:
    fields = body.model_dump(exclude={"name"})
    return TaskSpec(name=body.name or f"{body.plugin}.{body.action}", **fields)


def _request_hash(body: TaskCreate) -> str:
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _validate(body: TaskCreate, state: State) -> None:
    if body.type not in _SUPPORTED_TYPES:
        raise ValidationFailed("type", f"type '{body.type.value}' is not supported yet; use adhoc")
    state.plugins.check_call(body.plugin, body.action, body.args, body.kwargs)
    if body.target is not None:
        try:
            state.store.get_agent(body.target)
        except NotFound:
            raise ValidationFailed("target", f"no agent named '{body.target}'") from None


@router.post("", status_code=201)
async def create_task(
    body: TaskCreate, state: State, idempotency_key: IdempotencyKey = None
) -> TaskRead:
    """Create a task. An adhoc task fires at once.

    The plugin, action and arguments are checked against the action's signature, and a
    `specific` target must be an enrolled agent. With an `Idempotency-Key` header, sending the
    same body again returns the task created the first time; another body with the same key
    is refused with 409.
    """
    await run_in_threadpool(_validate, body, state)
    created = await run_in_threadpool(
        state.store.create_task,
        _spec(body),
        now=utcnow(),
        idempotency_key=idempotency_key,
        request_hash=_request_hash(body) if idempotency_key else None,
    )
    state.notifier.wake(created.wake)
    return task_read(created.task)


@router.get("")
def list_tasks(
    state: State,
    status: Annotated[TaskStatusIn | None, Query(description="Only tasks in this status.")] = None,
    type: Annotated[TaskType | None, Query(description="Only tasks of this type.")] = None,
    plugin: Annotated[str | None, Query(max_length=128)] = None,
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
    """One task with its most recent runs, each with its executions and their roll-up."""
    task = state.store.get_task(task_id)
    runs = state.store.list_runs(task_id, limit=20)
    executions, _ = state.store.list_executions(run_ids=[run.id for run in runs], limit=10_000)
    return task_detail(task, runs, executions)


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
async def cancel_task(task_id: TaskId, state: State) -> TaskRead:
    """Cancel a task: queued executions are cancelled, running ones are stopped on their agents.

    409 if the task already finished.
    """
    task, wake = await run_in_threadpool(state.store.cancel_task, task_id, now=utcnow())
    state.notifier.wake(wake)
    return task_read(task)


@router.delete("/{task_id}", status_code=204)
async def delete_task(task_id: TaskId, state: State) -> None:
    """Delete a finished task with its runs, executions and logs.

    409 while the task is unfinished or any of its executions is still stopping; cancel it
    first. 404 if there is no such task.
    """
    await run_in_threadpool(state.store.delete_task, task_id)
