"""Scenario ``memory``: the server's RSS with many enrolled agents, and an idle agent's RSS with
its warm worker processes."""

from __future__ import annotations

import asyncio

import psutil

from octopus.bench.api import bench_task
from octopus.bench.context import BenchContext
from octopus.bench.results import ScenarioResult
from octopus.bench.simagents import enroll_many
from octopus.bench.waiting import task_ended

MB = 1024 * 1024
IDLE_SETTLE_SECONDS = 1.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return round(total / MB, 1)


async def _agent_rss(ctx: BenchContext) -> tuple[float, int]:
    agent = await asyncio.to_thread(ctx.worker_agent)
    # Two tasks at once, so that every warm worker has run an action (as after real work).
    ids = [await ctx.api.create(bench_task("noop")) for _ in range(ctx.options.worker_concurrency)]
    for task_id in ids:
        await task_ended(ctx.api, task_id)
    await asyncio.sleep(IDLE_SETTLE_SECONDS)
    workers = len(psutil.Process(agent.pid).children(recursive=True))
    return tree_rss_mb(agent.pid), workers


async def run(ctx: BenchContext) -> ScenarioResult:
    """Measure the idle agent, then enroll ``rss_agents`` agents and measure the server."""
    agent_mb, workers = await _agent_rss(ctx)
    figures: dict[str, float | None] = {"agent_rss_mb": agent_mb, "server_rss_mb": None}
    notes: dict[str, object] = {"agent_processes": 1 + workers}
    skipped = None
    if ctx.server is None:
        skipped = "server_rss_mb needs the server the bench starts (RSS is read locally)"
    else:
        notes["server_rss_mb_before"] = tree_rss_mb(ctx.server.pid)
        names = [f"sim-{ctx.run_id}-rss-{n}" for n in range(ctx.options.rss_agents)]
        await enroll_many(ctx.url, ctx.join_token, names, in_flight=32, heartbeat=True)
        figures["server_rss_mb"] = tree_rss_mb(ctx.server.pid)
        notes["enrolled_agents"] = len(names)
    return ScenarioResult(name="memory", figures=figures, skipped=skipped, notes=notes)
