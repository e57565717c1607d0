"""Fill a stopped server's database with finished history, fast: SQLAlchemy Core executemany
in large batches, ids chosen here so that no row needs a round trip.

The history is ``all`` tasks on ``AGENTS_PER_TASK`` agents, one run each, one execution per
agent; about one in ten failed on one agent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select

from octopus.bench.plugin import PLUGIN_NAME
from octopus.core.enums import (
    ExecutionStatus,
    OnLost,
    Ownership,
    RunStatus,
    TaskStatus,
    TaskType,
)
from octopus.store import open_store
from octopus.store.tables import executions, runs, tasks

AGENTS_PER_TASK = 10
TASKS_PER_BATCH = 5_000
FAILED_EVERY = 10


def _task(task_id: int, at: datetime, failed: bool) -> dict[str, Any]:
    status = TaskStatus.FAILED if failed else TaskStatus.SUCCEEDED
    return {
        "id": task_id, "name": f"{PLUGIN_NAME}.noop", "plugin": PLUGIN_NAME, "action": "noop",
        "args": [], "kwargs": {}, "type": TaskType.ADHOC.value,
        "ownership": Ownership.ALL.value, "target": None, "labels": {},
        "timeout_seconds": None, "max_retries": 0, "retry_backoff_seconds": 1.0,
        "on_lost": OnLost.RETRY.value, "timezone": "UTC", "status": status.value,
        "last_run_status": status.value, "created_at": at, "updated_at": at,
    }  # fmt: skip


def _run(task_id: int, at: datetime, failed: bool) -> dict[str, Any]:
    status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
    return {
        "id": task_id, "task_id": task_id, "fire_time": at, "status": status.value,
        "reason": None, "created_at": at, "started_at": at, "finished_at": at,
    }  # fmt: skip


def _executions(
    first_id: int, task_id: int, at: datetime, failed: bool
) -> Iterator[dict[str, Any]]:
    for number in range(AGENTS_PER_TASK):
        bad = failed and number == 0
        status = ExecutionStatus.FAILED if bad else ExecutionStatus.SUCCEEDED
        yield {
            "id": first_id + number, "run_id": task_id, "task_id": task_id,
            "ownership": Ownership.ALL.value, "agent": f"fill-agent-{number}", "attempt": 1,
            "retry_of": None, "status": status.value, "not_before": at,
            "lease_expires_at": None, "cancel_requested": False, "plugin_sha256": None,
            "result": None, "error": {"type": "RuntimeError", "message": "x"} if bad else None,
            "log": "", "log_truncated": False, "queued_at": at, "started_at": at,
            "finished_at": at,
        }  # fmt: skip


def _next_ids(conn: Connection) -> tuple[int, int]:
    """The first free task/run id (shared, so a run's id is its task's) and execution id."""
    task_max = conn.execute(select(func.max(tasks.c.id))).scalar() or 0
    run_max = conn.execute(select(func.max(runs.c.id))).scalar() or 0
    execution_max = conn.execute(select(func.max(executions.c.id))).scalar() or 0
    return max(task_max, run_max) + 1, execution_max + 1


def _batch(
    conn: Connection, first_task: int, first_execution: int, count: int, start: datetime
) -> None:
    task_rows: list[dict[str, Any]] = []
    run_rows: list[dict[str, Any]] = []
    execution_rows: list[dict[str, Any]] = []
    for offset in range(count):
        task_id = first_task + offset
        at = start + timedelta(seconds=offset)
        failed = task_id % FAILED_EVERY == 0
        task_rows.append(_task(task_id, at, failed))
        run_rows.append(_run(task_id, at, failed))
        first = first_execution + offset * AGENTS_PER_TASK
        execution_rows.extend(_executions(first, task_id, at, failed))
    conn.execute(insert(tasks), task_rows)
    conn.execute(insert(runs), run_rows)
    conn.execute(insert(executions), execution_rows)


def fill_history(database_url: str, executions_wanted: int) -> tuple[int, int]:
    """Add finished ``all`` tasks until about ``executions_wanted`` executions were added.

    The server must be stopped (SQLite has a single writer). Returns (tasks, executions) added.
    """
    store = open_store(database_url)
    total_tasks = max(1, executions_wanted // AGENTS_PER_TASK)
    start = datetime.now(UTC) - timedelta(seconds=total_tasks + 3600)
    try:
        with store.engine.begin() as conn:
            first_task, first_execution = _next_ids(conn)
        for done in range(0, total_tasks, TASKS_PER_BATCH):
            count = min(TASKS_PER_BATCH, total_tasks - done)
            with store.engine.begin() as conn:
                first = (first_task + done, first_execution + done * AGENTS_PER_TASK)
                _batch(conn, *first, count, start + timedelta(seconds=done))
    finally:
        store.close()
    return total_tasks, total_tasks * AGENTS_PER_TASK
