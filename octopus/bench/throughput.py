"""Scenario ``throughput``: no-op ``anyone`` tasks through one agent with 2 worker processes,
from the first create to the last recorded success."""

from __future__ import annotations

import asyncio
import time

from octopus.bench.api import AdminApi, bench_task
from octopus.bench.context import BenchContext
from octopus.bench.processes import BenchError
from octopus.bench.results import ScenarioResult
from octopus.bench.waiting import ENDED, ended_counts, tasks_ended

MIN_WAIT_SECONDS = 60.0
SLOWEST_RATE = 20.0
"""Tasks per second below which the bench gives up waiting (bounds the wait)."""
POLL_SECONDS = 0.25
"""How often the wait looks at the last task: rarely, since the figure comes from the stored
``finished_at`` times, and every poll takes CPU from the server being measured."""


async def last_ended(api: AdminApi, task_id: int, *, limit_seconds: float) -> None:
    """Wait, polling gently, until the last task created has ended (``anyone`` work is taken in
    id order, so the others have ended or are about to); BenchError after ``limit_seconds``."""
    deadline = time.monotonic() + limit_seconds
    while (await api.task(task_id))["status"] not in ENDED:
        if time.monotonic() > deadline:
            raise BenchError(f"task {task_id} did not end within {limit_seconds:g}s")
        await asyncio.sleep(POLL_SECONDS)


async def run(ctx: BenchContext) -> ScenarioResult:
    """Create the tasks (bulk API when the server has it), wait until all ended, verify."""
    await asyncio.to_thread(ctx.worker_agent)
    count = ctx.options.throughput_tasks
    bodies = [bench_task("noop") for _ in range(count)]
    bulk = await ctx.api.bulk_available()
    before = await ended_counts(ctx.api)
    first_create = time.time()
    if bulk:
        ids = await ctx.api.create_bulk(bodies)
        path = "bulk"
    else:
        ids = await ctx.api.create_many(bodies, ctx.options.create_concurrency)
        path = f"single POSTs, {ctx.options.create_concurrency} in flight"
    created = time.time()
    limit_seconds = max(MIN_WAIT_SECONDS, count / SLOWEST_RATE)
    await last_ended(ctx.api, ids[-1], limit_seconds=limit_seconds)
    await tasks_ended(ctx.api, before + count, limit_seconds=limit_seconds)
    verdict = await ctx.api.verify(ids)
    elapsed = verdict.last_finished_at - first_create
    rate = count / elapsed if verdict.correct and elapsed > 0 else None
    return ScenarioResult(
        name="throughput",
        figures={"throughput_tasks_per_s": round(rate, 1) if rate else None},
        correct=verdict.correct,
        notes={
            "tasks": count,
            "create_path": path,
            "create_per_s": round(count / (created - first_create), 1),
            "seconds": round(elapsed, 2),
            "problems": verdict.problems[:5],
        },
    )
