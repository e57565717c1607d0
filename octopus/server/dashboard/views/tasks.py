"""The task list (filters, name search, keyset pages) and one task's detail page."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Annotated, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from octopus.core.enums import TaskStatus, TaskType
from octopus.core.models import Execution, Task
from octopus.core.rollup import roll_up
from octopus.core.states import TASK_TERMINAL
from octopus.schemas.common import MAX_ID
from octopus.server.dashboard.actions import available_actions
from octopus.server.dashboard.deps import CurrentSession, State
from octopus.server.dashboard.render import page
from octopus.server.routes.tasks import TaskId
from octopus.store.base import TaskFilter

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
DETAIL_RUNS = 20
DETAIL_EXECUTIONS = 10_000  # as the API's task detail: enough for every roll-up
ROWS_PER_RUN = 100
NEXT_FIRE_TIMES = 5

Text = Annotated[str | None, Query(max_length=200)]


E = TypeVar("E", TaskStatus, TaskType)


def _parse(enum: type[E], raw: str | None) -> E | None:
    if not raw:
        return None
    try:
        return enum.parse(raw)
    except ValueError:
        return None


@router.get("/tasks")
def tasks_page(
    request: Request,
    session: CurrentSession,
    state: State,
    status: Text = None,
    type: Text = None,
    plugin: Text = None,
    agent: Text = None,
    q: Text = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    """Tasks, newest first, narrowed by the filters; ``before`` pages by id."""
    wanted = TaskFilter(
        status=_parse(TaskStatus, status),
        type=_parse(TaskType, type),
        plugin=plugin or None,
        agent=agent or None,
        search=(q or "").strip() or None,
    )
    found = state.store.find_tasks(wanted, before=before, limit=PAGE_SIZE)
    params = {
        "status": wanted.status.value if wanted.status else "",
        "type": wanted.type.value if wanted.type else "",
        "plugin": wanted.plugin or "",
        "agent": wanted.agent or "",
        "q": wanted.search or "",
    }
    kept = {k: v for k, v in params.items() if v}
    next_url = (
        f"/tasks?{urlencode({**kept, 'before': found.next_before})}" if found.next_before else None
    )
    return page(
        request,
        "tasks.html",
        session,
        topics="tasks",
        found=found,
        params=params,
        first_url=f"/tasks?{urlencode(kept)}" if before else None,
        next_url=next_url,
        statuses=list(TaskStatus),
        types=list(TaskType),
        plugins=[p.name for p in state.store.list_plugins()],
        agents=[a.name for a in state.store.list_agents()],
    )


def next_fire_times(task: Task) -> list[datetime]:
    """The task's coming fire times: its next one, and for an interval task the ones after."""
    first = task.next_run_at
    if first is None or task.status in TASK_TERMINAL:
        return []
    interval = task.spec.interval_seconds
    if interval is None:
        return [first]
    return [first + timedelta(seconds=interval * k) for k in range(NEXT_FIRE_TIMES)]


@router.get("/tasks/{task_id}")
def task_page(
    task_id: TaskId, request: Request, session: CurrentSession, state: State
) -> HTMLResponse:
    """One task: definition, next fire times, runs with roll-ups, executions, actions."""
    store = state.store
    task = store.get_task(task_id)
    runs = store.list_runs(task_id, limit=DETAIL_RUNS)
    executions, total = store.list_executions(
        run_ids=[run.id for run in runs], limit=DETAIL_EXECUTIONS
    )
    by_run: dict[int, list[Execution]] = defaultdict(list)
    for execution in executions:
        by_run[execution.run_id].append(execution)
    return page(
        request,
        "task.html",
        session,
        topics="tasks executions",
        task=task,
        runs=runs,
        by_run=by_run,
        rollups={run.id: roll_up(by_run[run.id]).summary() for run in runs},
        shown=len(executions),
        total=total,
        rows_per_run=ROWS_PER_RUN,
        next_times=next_fire_times(task),
        actions=available_actions(task),
    )
