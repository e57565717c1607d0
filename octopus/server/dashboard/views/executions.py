"""One execution: status, result, error and its log, followed live while it runs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from octopus.core.states import EXECUTION_TERMINAL
from octopus.server.dashboard.deps import CurrentSession, State
from octopus.server.dashboard.render import page
from octopus.server.routes.executions import ExecutionId

router = APIRouter(include_in_schema=False)


@router.get("/executions/{execution_id}")
def execution_page(
    execution_id: ExecutionId, request: Request, session: CurrentSession, state: State
) -> HTMLResponse:
    """An execution with its result, error and captured output."""
    execution = state.store.get_execution(execution_id)
    log, truncated = state.store.get_execution_log(execution_id)
    return page(
        request,
        "execution.html",
        session,
        topics="executions",
        execution=execution,
        task=state.store.get_task(execution.task_id),
        log=log,
        truncated=truncated,
        finished=execution.status in EXECUTION_TERMINAL,
    )
