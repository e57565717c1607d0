"""Deleting a finished task with its runs and executions."""

from __future__ import annotations

from sqlalchemy import Connection, delete, exists, select

from octopus.core.enums import ExecutionStatus
from octopus.core.states import TASK_TERMINAL
from octopus.errors import Conflict
from octopus.store._settle import values
from octopus.store._tasks import get_task
from octopus.store.tables import executions, tasks

_OPEN = (ExecutionStatus.QUEUED.value, ExecutionStatus.RUNNING.value)


def delete_task(conn: Connection, task_id: int) -> None:
    """Delete a finished task; its runs and executions go with it (ON DELETE CASCADE).

    Conflict while the task is unfinished or any of its executions is still queued or
    running (a cancelled task may still be stopping on an agent); NotFound if absent.
    """
    still_open = exists(
        select(executions.c.id).where(
            executions.c.task_id == task_id, executions.c.status.in_(_OPEN)
        )
    )
    deleted = conn.execute(
        delete(tasks)
        .where(tasks.c.id == task_id, tasks.c.status.in_(values(TASK_TERMINAL)), ~still_open)
        .returning(tasks.c.id)
    ).first()
    if deleted is None:
        status = get_task(conn, task_id).status
        if status in TASK_TERMINAL:
            raise Conflict(f"task {task_id} still has executions stopping on their agents")
        raise Conflict(f"task {task_id} is {status.value}; only a finished task can be deleted")
