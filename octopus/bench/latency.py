"""Scenario ``dispatch_latency``: from just before ``POST /api/v1/tasks`` to the action's first
line in the worker, on an idle agent, one task at a time."""

from __future__ import annotations

import asyncio
import random
import time

from octopus.bench.api import Verdict, bench_task
from octopus.bench.context import BenchContext
from octopus.bench.results import ScenarioResult, spread
from octopus.bench.waiting import task_ended

WARMUP_TASKS = 3
"""Tasks run first and not counted: the agent downloads the plugin, the workers import it."""


async def run(ctx: BenchContext) -> ScenarioResult:
    """Create ``latency_tasks`` tasks one at a time with small random gaps; time each."""
    await asyncio.to_thread(ctx.worker_agent)
    verdict = Verdict()
    latencies: list[float] = []
    answers: list[float] = []
    for number in range(WARMUP_TASKS + ctx.options.latency_tasks):
        await asyncio.sleep(random.uniform(0.01, 0.04))
        posted = time.time()
        task_id = await ctx.api.create(bench_task("mark"))
        answered = time.time()
        verdict.judge(await task_ended(ctx.api, task_id))
        started = verdict.results.get(task_id)
        if number >= WARMUP_TASKS and isinstance(started, float):
            latencies.append((started - posted) * 1000)
            answers.append((answered - posted) * 1000)
    return ScenarioResult(
        name="dispatch_latency",
        figures={"dispatch_latency_ms": spread(latencies)},
        correct=verdict.correct,
        notes={
            "tasks": len(latencies),
            "max_ms": round(max(latencies, default=0.0), 2),
            # The create's own answer time; the rest of the latency is the claim's hand-off.
            "create_answer_ms": spread(answers),
            "problems": verdict.problems[:5],
        },
    )
