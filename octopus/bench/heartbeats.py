"""Scenario ``heartbeats``: simulated agents heartbeat back to back for a fixed time."""

from __future__ import annotations

import asyncio
import time

from octopus.bench.context import BenchContext
from octopus.bench.results import ScenarioResult, percentile
from octopus.bench.simagents import SimAgent, enroll_many
from octopus.bench.wire import WireError


async def _pound(agent: SimAgent, until: float, latencies: list[float], errors: list[int]) -> None:
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            status = await agent.heartbeat()
        except WireError:
            status = 0
        if status == 200:
            latencies.append((time.perf_counter() - start) * 1000)
        else:
            errors.append(status)


async def run(ctx: BenchContext) -> ScenarioResult:
    """Enroll ``heartbeat_clients`` agents, then heartbeat as fast as the server answers."""
    names = [f"sim-{ctx.run_id}-hb-{n}" for n in range(ctx.options.heartbeat_clients)]
    agents = await enroll_many(ctx.url, ctx.join_token, names, heartbeat=False)
    latencies: list[float] = []
    errors: list[int] = []
    start = time.monotonic()
    until = start + ctx.options.heartbeat_seconds
    try:
        await asyncio.gather(*(_pound(agent, until, latencies, errors) for agent in agents))
    finally:
        await asyncio.gather(*(agent.close() for agent in agents))
    elapsed = time.monotonic() - start
    return ScenarioResult(
        name="heartbeats",
        figures={
            "heartbeats_per_s": round(len(latencies) / elapsed, 1),
            "heartbeat_p99_ms": round(percentile(latencies, 0.99), 2),
        },
        notes={
            "agents": len(agents),
            "seconds": round(elapsed, 2),
            "heartbeats": len(latencies),
            "errors": len(errors),
            "p50_ms": round(percentile(latencies, 0.5), 2),
        },
    )
