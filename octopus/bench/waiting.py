"""Bounded waits on the server: one task to finish, or a number of tasks to end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from octopus.bench.api import AdminApi
from octopus.bench.processes import BenchError

ENDED = ("succeeded", "failed", "cancelled")


async def task_ended(
    api: AdminApi, task_id: int, *, limit_seconds: float = 30.0, first_wait: float = 0.005
) -> dict[str, Any]:
    """Poll one task until it has ended and return it; BenchError after ``limit_seconds``.

    Polls start after ``first_wait`` and back off to 20 ms, so that polling does not compete
    with the dispatch being measured more than it must.
    """
    deadline = time.monotonic() + limit_seconds
    delay = first_wait
    while True:
        await asyncio.sleep(delay)
        task = await api.task(task_id)
        if task["status"] in ENDED:
            return task
        if time.monotonic() > deadline:
            raise BenchError(
                f"task {task_id} did not end within {limit_seconds:g}s ({task['status']})"
            )
        delay = min(delay * 2, 0.02)


async def ended_counts(api: AdminApi) -> int:
    """How many tasks have ended, in any way."""
    counts = await asyncio.gather(*(api.count(status) for status in ENDED))
    return sum(counts)


async def tasks_ended(api: AdminApi, target: int, *, limit_seconds: float) -> None:
    """Poll until at least ``target`` tasks have ended; BenchError after ``limit_seconds``."""
    deadline = time.monotonic() + limit_seconds
    while (done := await ended_counts(api)) < target:
        if time.monotonic() > deadline:
            raise BenchError(f"only {done} of {target} tasks ended within {limit_seconds:g}s")
        await asyncio.sleep(0.1)
