"""``octopus bench``: measure a server and its agents and print the figures (table or JSON)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from octopus.bench.context import BenchOptions
from octopus.bench.plugin import write_plugin
from octopus.bench.results import BenchReport
from octopus.bench.runner import SCENARIOS, Target, parse_scenarios, run_bench
from octopus.cli import chaos, render
from octopus.cli.arguments import env_option

app = typer.Typer(help="Measure Octopus; `octopus bench chaos` proves it under faults.")

TARGETS: dict[str, tuple[str, str, float]] = {
    "dispatch_latency_ms.p50": ("ms", "<=", 3),
    "dispatch_latency_ms.p99": ("ms", "<=", 10),
    "throughput_tasks_per_s": ("tasks/s", ">=", 3000),
    "heartbeats_per_s": ("/s", ">=", 5000),
    "heartbeat_p99_ms": ("ms", "<=", 20),
    "schedule_lag_ms.p99": ("ms", "<=", 20),
    "server_rss_mb": ("MB", "<=", 250),
    "agent_rss_mb": ("MB", "<=", 80),
    "list_p99_ms": ("ms", "<=", 50),
}
"""The targets of issue 5, shown beside each figure."""


def _count(help_text: str) -> Any:
    return typer.Option(min=1, help=help_text, show_default=False)


def _flatten(data: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows += [(f"{key}.{sub}", item) for sub, item in value.items()]
        else:
            rows.append((key, value))
    return rows


def _target_cell(key: str, value: Any) -> str:
    if key not in TARGETS:
        return ""
    unit, op, bound = TARGETS[key]
    if not isinstance(value, int | float):
        return f"{op} {bound:g} {unit}"
    met = value <= bound if op == "<=" else value >= bound
    return f"{op} {bound:g} {unit} ({'met' if met else 'missed'})"


def report_table(report: BenchReport) -> Table:
    """The figures of a bench run, one row per figure, with the issue's target beside it."""
    table = Table(title="octopus bench", show_lines=False)
    for column in ("scenario", "figure", "value", "target", "notes"):
        table.add_column(column)
    for result in report.results:
        why = result.error or result.skipped
        notes = (
            f"skipped: {why}"
            if why
            else ", ".join(
                f"{k}={v}" for k, v in result.notes.items() if not isinstance(v, dict | list)
            )
        )
        for key, value in _flatten(result.figures):
            shown = "null" if value is None else f"{value:g}"
            table.add_row(result.name, key, shown, _target_cell(key, value), notes)
            notes = ""
    return table


def _options(quick: bool, overrides: dict[str, Any]) -> BenchOptions:
    base = BenchOptions.quick() if quick else BenchOptions()
    given = {key: value for key, value in overrides.items() if value is not None}
    return dataclasses.replace(base, **given)


def _progress(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


@app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    quick: Annotated[bool, typer.Option("--quick", help="Smaller counts: about a minute.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    scenarios: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated scenarios (default: all): {', '.join(SCENARIOS)}."),
    ] = None,
    server: Annotated[
        str | None,
        env_option("--server", "OCTOPUS_SERVER_URL", "Measure this running server instead."),
    ] = None,
    token: Annotated[
        str | None, env_option("--token", "OCTOPUS_ADMIN_TOKEN", "Admin token of --server.")
    ] = None,
    join_token: Annotated[
        str | None,
        env_option("--join-token", "OCTOPUS_JOIN_TOKEN", "Join token of --server (local agents)."),
    ] = None,
    database_url: Annotated[
        str | None,
        env_option("--database-url", "OCTOPUS_DATABASE_URL", "Start the server on this database."),
    ] = None,
    tasks: Annotated[int | None, _count("Dispatch latency: tasks timed.")] = None,
    throughput_tasks: Annotated[int | None, _count("Throughput: tasks.")] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.5, help="Heartbeats: seconds.", show_default=False)
    ] = None,
    heartbeat_clients: Annotated[int | None, _count("Heartbeats: simulated agents.")] = None,
    schedule_tasks: Annotated[int | None, _count("Schedule lag: interval tasks.")] = None,
    schedule_seconds: Annotated[
        float | None,
        typer.Option(min=1.0, help="Schedule lag: seconds of runs measured.", show_default=False),
    ] = None,
    rss_agents: Annotated[int | None, _count("Memory: enrolled simulated agents.")] = None,
    executions: Annotated[int | None, _count("Lists: executions stored.")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the work dir (logs, data).")] = False,
    write_plugin_dir: Annotated[
        Path | None,
        typer.Option("--write-plugin", help="Write the bench plugin into DIR and exit."),
    ] = None,
) -> None:
    """Measure dispatch latency, throughput, heartbeats, schedule lag, memory and list calls.

    Starts its own server (SQLite in a temporary dir, or --database-url) and local agents,
    or measures --server with local agents. Exits non-zero when a task the bench created did
    not end exactly once with succeeded, or when a scenario could not finish.
    """
    if ctx.invoked_subcommand is not None:
        return
    if write_plugin_dir is not None:
        typer.echo(f"wrote {write_plugin(write_plugin_dir)}")
        return
    try:
        chosen = parse_scenarios(scenarios)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scenarios") from None
    options = _options(
        quick,
        {
            "latency_tasks": tasks, "throughput_tasks": throughput_tasks,
            "heartbeat_seconds": duration, "heartbeat_clients": heartbeat_clients,
            "schedule_tasks": schedule_tasks, "schedule_seconds": schedule_seconds,
            "rss_agents": rss_agents,
            "list_executions": executions,
        },
    )  # fmt: skip
    target = Target(
        server_url=server, admin_token=token, join_token=join_token, database_url=database_url
    )
    report = asyncio.run(
        run_bench(options, chosen, target, quick=quick, keep_workdir=keep, progress=_progress)
    )
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        console = render.stdout()
        console.print(report_table(report))
        console.print(f"correct: {str(report.correct).lower()}")
        for name, error in report.errors.items():
            console.print(f"{name} failed: {error}")
    if not report.correct or report.errors:
        raise typer.Exit(1)


app.command("chaos")(chaos.chaos)
