"""Scenario ``lists``: task and execution list calls with a large history stored.

The history is written straight into the database while the server is stopped (see ``fill``),
then the server starts again on the same data and the calls are timed.
"""

from __future__ import annotations

import asyncio
import random
import time

from octopus.bench.context import BenchContext
from octopus.bench.fill import fill_history
from octopus.bench.processes import BenchError
from octopus.bench.results import ScenarioResult, percentile


def _calls(newest_task: int, tasks_added: int) -> list[tuple[str, str, dict[str, int | str]]]:
    """One round of the calls a dashboard or CLI makes: first pages, filters, one task."""
    task_id = newest_task - random.randrange(tasks_added)
    return [
        ("tasks", "/api/v1/tasks", {"limit": 50}),
        ("tasks?status", "/api/v1/tasks", {"status": "failed", "limit": 50}),
        ("tasks?offset", "/api/v1/tasks", {"limit": 50, "offset": random.randrange(1000)}),
        ("task executions", f"/api/v1/tasks/{task_id}/executions", {"limit": 100}),
    ]


async def _time_calls(ctx: BenchContext, tasks_added: int) -> dict[str, list[float]]:
    newest = (await ctx.api.call("GET", "/api/v1/tasks", params={"limit": 1})).body["items"][0]
    timings: dict[str, list[float]] = {}
    while sum(map(len, timings.values())) < ctx.options.list_calls:
        for kind, path, params in _calls(int(newest["id"]), tasks_added):
            start = time.perf_counter()
            answer = await ctx.api.call("GET", path, params=params)
            elapsed = (time.perf_counter() - start) * 1000
            if answer.status != 200:
                raise BenchError(f"GET {path} failed: {answer.error}")
            timings.setdefault(kind, []).append(elapsed)
    return timings


async def run(ctx: BenchContext) -> ScenarioResult:
    """Stop the server, add ``list_executions`` executions, start it again, time list calls."""
    server = ctx.server
    if server is None:
        return ScenarioResult(
            name="lists",
            figures={"list_p99_ms": None},
            skipped="needs the server the bench starts (the history is written into its database)",
        )
    for agent in ctx.agents.values():
        await asyncio.to_thread(agent.stop)
    ctx.agents.clear()
    await asyncio.to_thread(server.stop)
    started = time.monotonic()
    tasks_added, executions_added = await asyncio.to_thread(
        fill_history, server.database_url, ctx.options.list_executions
    )
    fill_seconds = time.monotonic() - started
    await asyncio.to_thread(server.start)
    timings = await _time_calls(ctx, tasks_added)
    every = [t for values in timings.values() for t in values]
    return ScenarioResult(
        name="lists",
        figures={"list_p99_ms": round(percentile(every, 0.99), 2)},
        notes={
            "executions_added": executions_added,
            "tasks_added": tasks_added,
            "fill_seconds": round(fill_seconds, 1),
            "calls": len(every),
            "p99_ms_by_call": {k: round(percentile(v, 0.99), 2) for k, v in timings.items()},
        },
    )
