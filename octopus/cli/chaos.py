"""``octopus bench chaos``: kill and cut off a real server and agents, then prove the invariants."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from octopus.bench.chaos import ChaosOptions, ChaosReport, ChaosRun
from octopus.cli import render
from octopus.cli.arguments import env_option


def _progress(line: str) -> None:
    print(f"chaos: {line}", file=sys.stderr, flush=True)


def _table(report: ChaosReport) -> Table:
    table = Table(title=f"octopus bench chaos (seed {report.seed})")
    table.add_column("figure")
    table.add_column("value")
    rows = {
        "tasks accepted": report.accepted,
        "task outcomes": dict(report.outcomes),
        "executions": dict(report.executions),
        "faults injected": dict(report.events),
        "extra action starts (each after a lost lease)": report.extra_starts,
        "hand-backs of work claimed ahead (since the server last started)": report.release_requests,
        "server RSS per minute (MB)": report.memory_mb,
        "agent RSS per minute, mean (MB)": report.agent_memory_mb,
        "create p99 per minute (ms)": report.create_p99_ms,
        "elapsed (s)": round(report.elapsed_seconds, 1),
        "invariant violations": len(report.violations),
    }
    for name, value in rows.items():
        table.add_row(name, str(value))
    return table


def chaos(
    tasks: Annotated[
        int, typer.Option(min=1, help="Tasks to create (per minute with --minutes).")
    ] = 10_000,
    agents: Annotated[int, typer.Option(min=1, help="Agents, each with --concurrency slots.")] = 20,
    concurrency: Annotated[int, typer.Option(min=1, help="Slots per agent.")] = 2,
    slow_every: Annotated[
        int,
        typer.Option(
            min=0,
            help="Every Nth task takes 1 s instead of 0.05 s (0: none): the agents' claim-ahead "
            "moves, so they hand back what they claimed ahead.",
        ),
    ] = 0,
    minutes: Annotated[
        float | None,
        typer.Option(min=0.1, help="Soak: go on this long, then check.", show_default=False),
    ] = None,
    kill_server: Annotated[
        bool,
        typer.Option(
            "--kill-server/--no-kill-server",
            help="Include kill -9 of the server among the faults (off: a soak shows how the "
            "server's memory grows when it is never restarted).",
        ),
    ] = True,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the fault schedule (default: random).", show_default=False),
    ] = None,
    database_url: Annotated[
        str | None,
        env_option("--database-url", "OCTOPUS_DATABASE_URL", "Run the server on this database."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the work dir (logs, data).")] = False,
) -> None:
    """Create tasks while agents and the server are killed (kill -9) and the network between
    them is delayed, blackholed, reset or loses responses; then check that no accepted task was
    lost, each ended exactly once, repeats stayed within one per lost lease, statuses only moved
    forward, nothing is left running and no worker process outlived its agent.

    Exits 1 when an invariant was violated (each is printed).
    """
    options = ChaosOptions(
        tasks=tasks, agents=agents, concurrency=concurrency, slow_every=slow_every,
        minutes=minutes, kill_server=kill_server, database_url=database_url,
    )  # fmt: skip
    if seed is not None:
        options = dataclasses.replace(options, seed=seed)
    workdir = Path(tempfile.mkdtemp(prefix="octopus-chaos-"))
    try:
        report = ChaosRun(options, workdir, progress=_progress).run()
    finally:
        if keep:
            _progress(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        console = render.stdout()
        console.print(_table(report))
        for violation in report.violations:
            console.print(f"violation: {violation}")
        console.print(f"correct: {str(report.correct).lower()}")
    if not report.correct:
        raise typer.Exit(1)
