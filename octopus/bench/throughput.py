"""Scenario ``throughput``: no-op ``anyone`` tasks through one agent with 2 worker processes,
from the first create to the last recorded success."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from octopus.bench.api import AdminApi, bench_task
from octopus.bench.context import BenchContext
from octopus.bench.results import ScenarioResult
from octopus.bench.waiting import ended_counts, tasks_ended

MIN_WAIT_SECONDS = 60.0
SLOWEST_RATE = 20.0
"""Tasks per second below which the bench gives up waiting (bounds the wait)."""


async def create_singles(api: AdminApi, bodies: list[dict[str, Any]], in_flight: int) -> list[int]:
    """Create tasks with single POSTs, ``in_flight`` at a time; ids in creation order."""
    ids: list[int] = [0] * len(bodies)
    queue = iter(enumerate(bodies))

    async def lane() -> None:
        for index, body in queue:
            ids[index] = await api.create(body)

    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return ids


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
        ids = await create_singles(ctx.api, bodies, ctx.options.create_concurrency)
        path = f"single POSTs, {ctx.options.create_concurrency} in flight"
    created = time.time()
    await tasks_ended(
        ctx.api, before + count, limit_seconds=max(MIN_WAIT_SECONDS, count / SLOWEST_RATE)
    )
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
