"""Run the chosen scenarios against the bench's own server, or a given one, and collect results."""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from octopus import __version__
from octopus.bench import heartbeats, latency, lists, memory, schedule, throughput
from octopus.bench.api import AdminApi
from octopus.bench.context import BenchContext, BenchOptions
from octopus.bench.plugin import PLUGIN_NAME, write_plugin
from octopus.bench.processes import BenchError, ServerProcess, clean_env
from octopus.bench.results import BenchReport, ScenarioResult

Scenario = Callable[[BenchContext], Awaitable[ScenarioResult]]

SCENARIOS: dict[str, tuple[Scenario, tuple[str, ...]]] = {
    "dispatch_latency": (latency.run, ("dispatch_latency_ms",)),
    "throughput": (throughput.run, ("throughput_tasks_per_s",)),
    "schedule_lag": (schedule.run, ("schedule_lag_ms",)),
    "heartbeats": (heartbeats.run, ("heartbeats_per_s", "heartbeat_p99_ms")),
    "memory": (memory.run, ("server_rss_mb", "agent_rss_mb")),
    "lists": (lists.run, ("list_p99_ms",)),
}
"""Every scenario in the order it runs (``lists`` rewrites the database, so it runs last) and
the JSON keys it fills."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Which server to measure: a running one (``server_url``), else one the bench starts, on
    ``database_url`` or on SQLite in a temporary data dir."""

    server_url: str | None = None
    admin_token: str | None = None
    join_token: str | None = None
    database_url: str | None = None


def parse_scenarios(text: str | None) -> list[str]:
    """Scenario names from ``a,b`` (all when None), in run order; ValueError naming a bad one."""
    if text is None:
        return list(SCENARIOS)
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in SCENARIOS]
    if unknown or not wanted:
        bad = unknown[0] if unknown else text
        raise ValueError(f"unknown scenario '{bad}'; choose from {', '.join(SCENARIOS)}")
    return [name for name in SCENARIOS if name in wanted]


def _environment(options: BenchOptions, target: Target, quick: bool) -> dict[str, object]:
    if target.server_url:
        where = f"server at {target.server_url}"
    else:
        backend = (target.database_url or "sqlite").split(":", 1)[0]
        where = f"own server on {backend}"
    return {
        "octopus": __version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": where,
        "cpus": os.cpu_count(),
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
        "quick": quick,
        "options": asdict(options),
    }


async def _context(options: BenchOptions, target: Target, workdir: Path) -> BenchContext:
    if target.server_url:
        if not target.admin_token or not target.join_token:
            raise BenchError("--server needs --token (admin) and --join-token to start agents")
        api = AdminApi(target.server_url, target.admin_token)
        if not await api.has_plugin(PLUGIN_NAME):
            await api.aclose()
            raise BenchError(
                f"the server has no '{PLUGIN_NAME}' plugin: write it into the server's plugins "
                "dir with 'octopus bench --write-plugin DIR'"
            )
        return BenchContext(
            options=options, url=target.server_url, admin_token=target.admin_token,
            join_token=target.join_token, workdir=workdir, api=api,
        )  # fmt: skip
    admin, join = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    server = ServerProcess(
        workdir,
        plugins_dir=write_plugin(workdir / "plugins").parent,
        env=clean_env(OCTOPUS_ADMIN_TOKEN=admin, OCTOPUS_JOIN_TOKEN=join),
        database_url=target.database_url,
    )
    await asyncio.to_thread(server.start)
    return BenchContext(
        options=options, url=server.url, admin_token=admin, join_token=join,
        workdir=workdir, api=AdminApi(server.url, admin), server=server,
    )  # fmt: skip


async def _run_one(name: str, ctx: BenchContext) -> ScenarioResult:
    scenario, keys = SCENARIOS[name]
    try:
        return await scenario(ctx)
    except BenchError as exc:
        return ScenarioResult(name=name, figures=dict.fromkeys(keys), error=exc.message)
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = f"HTTP: {type(exc).__name__}: {exc}"
        return ScenarioResult(name=name, figures=dict.fromkeys(keys), error=error)


async def run_bench(
    options: BenchOptions,
    scenarios: Sequence[str],
    target: Target,
    *,
    quick: bool = False,
    keep_workdir: bool = False,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Set up the target, run ``scenarios`` in order, stop every process the bench started."""
    workdir = Path(tempfile.mkdtemp(prefix="octopus-bench-"))
    results: list[ScenarioResult] = []
    ctx: BenchContext | None = None
    try:
        ctx = await _context(options, target, workdir)
        for name in scenarios:
            if progress is not None:
                progress(f"running {name}")
            results.append(await _run_one(name, ctx))
    finally:
        if ctx is not None:
            await ctx.api.aclose()
            await asyncio.to_thread(ctx.stop_all)
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    environment = _environment(options, target, quick)
    environment["workdir"] = str(workdir) if keep_workdir else None
    return BenchReport(results=results, environment=environment)
