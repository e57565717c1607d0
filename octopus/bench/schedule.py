"""Scenario ``schedule_lag``: interval tasks at 1 s; lateness of each action's start against
its run's fire time. Skipped, with the server's reason, when it does not take interval tasks."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from octopus.bench.api import AdminApi, bench_task
from octopus.bench.context import BenchContext
from octopus.bench.results import ScenarioResult, spread

INTERVAL_SECONDS = 1.0
SETTLE_SECONDS = 2.0
"""Time after cancelling for the last runs' reports to arrive."""
CANCEL_CONCURRENCY = 16


def _lags(fired: list[tuple[float, dict[str, Any]]]) -> list[float]:
    """Lateness in ms of every run of ``fired`` (see ``_fired_in``) whose execution succeeded."""
    lags = []
    for at, run in fired:
        for execution in run["executions"]:
            started = execution["result"]
            if execution["status"] == "succeeded" and isinstance(started, float):
                lags.append((started - at) * 1000)
    return lags


def _fired_in(
    runs: list[dict[str, Any]], window: tuple[float, float]
) -> list[tuple[float, dict[str, Any]]]:
    """The runs fired within ``window`` (epoch seconds, end excluded), with their fire time.

    Runs fired while the tasks were still being created or cancelled are left out: they
    measure the bench's own creates and cancels competing with the scheduler, not the
    scheduler on idle agents (a task's first run also brings the plugin to the agent).
    """
    fired = [(datetime.fromisoformat(run["fire_time"]).timestamp(), run) for run in runs]
    return [(at, run) for at, run in fired if window[0] <= at < window[1]]


def _phases(count: int) -> list[str]:
    """Start times spread evenly over one interval, as tasks made at different times are (a
    start time already past fires at its next slot)."""
    base = datetime.now(UTC)
    step = INTERVAL_SECONDS / max(count, 1)
    return [(base + timedelta(seconds=index * step)).isoformat() for index in range(count)]


async def _create_all(api: AdminApi, body: dict[str, Any], count: int, in_flight: int) -> list[int]:
    """``count`` interval tasks phased over one interval: in bulk when the server has it."""
    bodies = [{**body, "start_at": start_at} for start_at in _phases(count)]
    if await api.bulk_available():
        return await api.create_bulk(bodies)
    return await api.create_many(bodies, in_flight)


async def _cancel_all(api: AdminApi, ids: list[int]) -> None:
    gate = asyncio.Semaphore(CANCEL_CONCURRENCY)

    async def cancel(task_id: int) -> None:
        async with gate:
            await api.cancel(task_id)

    await asyncio.gather(*(cancel(task_id) for task_id in ids))


async def run(ctx: BenchContext) -> ScenarioResult:
    """Probe with one interval task; if taken, run ``schedule_tasks`` of them for a while and
    measure the runs fired in between the last create and the first cancel."""
    body = bench_task("mark", type="interval", interval_seconds=INTERVAL_SECONDS)
    probe, reason = await ctx.api.try_create(body)
    if probe is None:
        return ScenarioResult(
            name="schedule_lag",
            figures={"schedule_lag_ms": None},
            skipped=f"the server refused an interval task: {reason}",
        )
    await asyncio.to_thread(ctx.worker_agent)
    count, in_flight = ctx.options.schedule_tasks - 1, ctx.options.create_concurrency
    ids = [probe] + await _create_all(ctx.api, body, count, in_flight)
    # From one interval after the last create every task has fired its first run.
    window_start = time.time() + INTERVAL_SECONDS
    await asyncio.sleep(INTERVAL_SECONDS + ctx.options.schedule_seconds)
    window = (window_start, time.time())
    await _cancel_all(ctx.api, ids)
    await asyncio.sleep(SETTLE_SECONDS)
    lags: list[float] = []
    statuses: Counter[str] = Counter()
    for task_id in ids:
        fired = _fired_in(await ctx.api.runs(task_id), window)
        lags += _lags(fired)
        statuses.update(run["status"] for _, run in fired)
    # Fire times come from the start times this bench chose, and the marks from the local
    # workers: one clock, so a negative lag is a run that started before its time.
    early = sum(1 for lag in lags if lag < 0)
    return ScenarioResult(
        name="schedule_lag",
        figures={"schedule_lag_ms": spread(lags, ("p50", "p99")) if lags else None},
        skipped=None if lags else "no interval run succeeded",
        correct=early == 0 if lags else None,
        notes={
            "tasks": len(ids),
            "runs": len(lags),
            # A scheduler that falls behind and skips fire times shows here, not in the lag.
            "runs_due": int(len(ids) * (window[1] - window[0]) / INTERVAL_SECONDS),
            # Every due fire time has a run on record: behind schedule, the overlap policy
            # skips the runs of tasks whose previous run has not finished.
            "window_runs_by_status": dict(sorted(statuses.items())),
            "window_seconds": round(window[1] - window[0], 2),
            "max_ms": round(max(lags, default=0.0), 2),
            "min_ms": round(min(lags, default=0.0), 2),
            "early_runs": early,
        },
    )
