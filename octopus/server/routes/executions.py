"""Executions: one agent's attempt at one run, and its captured output."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from octopus.schemas.common import MAX_ID
from octopus.schemas.tasks import ExecutionRead, LogRead
from octopus.server.auth import Admin, State
from octopus.server.present import execution_read

router = APIRouter(prefix="/api/v1/executions", tags=["executions"], dependencies=[Admin])

ExecutionId = Annotated[int, Path(ge=1, le=MAX_ID, description="The execution's id.")]


@router.get("/{execution_id}")
def get_execution(execution_id: ExecutionId, state: State) -> ExecutionRead:
    """One execution with its status, attempt, result and error."""
    return execution_read(state.store.get_execution(execution_id))


@router.get("/{execution_id}/log")
def get_execution_log(execution_id: ExecutionId, state: State) -> LogRead:
    """The captured stdout and stderr of an execution (bounded; `truncated` says if cut)."""
    log, truncated = state.store.get_execution_log(execution_id)
    return LogRead(execution_id=execution_id, log=log, truncated=truncated)
