"""Scenario ``schedule_lag``: interval tasks at 1 s; lateness of each action's start against
its run's fire time. Skipped, with the server's reason, when it does not take interval tasks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from octopus.bench.api import bench_task
from octopus.bench.context import BenchContext
from octopus.bench.results import ScenarioResult, spread

INTERVAL_SECONDS = 1.0
SETTLE_SECONDS = 2.0
"""Time after cancelling for the last runs' reports to arrive."""


def _lags(runs: list[dict[str, Any]]) -> list[float]:
    """Lateness in ms of every run whose execution succeeded, but the task's first.

    The first run fires as the task is created (and may bring the plugin to the agent): it
    measures creation, not the scheduler waking at a fire time.
    """
    lags = []
    for run in sorted(runs, key=lambda run: run["fire_time"])[1:]:
        fired = datetime.fromisoformat(run["fire_time"]).timestamp()
        for execution in run["executions"]:
            started = execution["result"]
            if execution["status"] == "succeeded" and isinstance(started, float):
                lags.append((started - fired) * 1000)
    return lags


def _phases(count: int) -> list[str]:
    """Start times spread evenly over one interval, as tasks made at different times are (a
    start time already past fires at its next slot)."""
    base = datetime.now(UTC)
    step = INTERVAL_SECONDS / max(count, 1)
    return [(base + timedelta(seconds=index * step)).isoformat() for index in range(count)]


async def run(ctx: BenchContext) -> ScenarioResult:
    """Probe with one interval task; if taken, run ``schedule_tasks`` of them for a while."""
    body = bench_task("mark", type="interval", interval_seconds=INTERVAL_SECONDS)
    probe, reason = await ctx.api.try_create(body)
    if probe is None:
        return ScenarioResult(
            name="schedule_lag",
            figures={"schedule_lag_ms": None},
            skipped=f"the server refused an interval task: {reason}",
        )
    await asyncio.to_thread(ctx.worker_agent)
    ids = [probe] + [
        await ctx.api.create({**body, "start_at": start_at})
        for start_at in _phases(ctx.options.schedule_tasks - 1)
    ]
    await asyncio.sleep(ctx.options.schedule_seconds)
    for task_id in ids:
        await ctx.api.cancel(task_id)
    await asyncio.sleep(SETTLE_SECONDS)
    lags: list[float] = []
    for task_id in ids:
        lags += _lags(await ctx.api.runs(task_id))
    return ScenarioResult(
        name="schedule_lag",
        figures={"schedule_lag_ms": spread(lags, ("p50", "p99")) if lags else None},
        skipped=None if lags else "no interval run succeeded",
        notes={"tasks": len(ids), "runs": len(lags)},
    )
