"""``octopus task``: create, list, show, pause, resume, run now, cancel, wait for and read the
logs of tasks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from octopus.cli import render
from octopus.cli.arguments import (
    ActionArgs,
    ActionTarget,
    ArgJsonOption,
    KwargsOption,
    parse_args,
    parse_kwargs,
    split_action,
)
from octopus.cli.client import Client, ServerOption, TokenOption
from octopus.config import parse_labels
from octopus.core.enums import TaskStatus
from octopus.core.states import TASK_TERMINAL
from octopus.schemas.common import Page
from octopus.schemas.tasks import ExecutionRead, LogRead, RunRead, TaskDetail, TaskRead

app = typer.Typer(help="Create and follow tasks on a server.", no_args_is_help=True)

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2
POLL_SECONDS = 0.5

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print the server's JSON instead of a table.")
]
WaitTimeout = Annotated[
    float | None,
    typer.Option("--timeout", min=0, help="Give up after this many seconds (exit code 2)."),
]
PollInterval = Annotated[
    float, typer.Option("--interval", min=0.05, help="Seconds between polls.", hidden=True)
]


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _labels(raw: str | None) -> dict[str, str]:
    try:
        return parse_labels(raw or "")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--labels") from None


def _schedule(at: str | None, every: float | None, cron: str | None) -> dict[str, Any]:
    """Type and timing fields from --at / --every / --cron; adhoc when none is given."""
    given = [name for name, value in (("--at", at), ("--every", every), ("--cron", cron)) if value]
    if len(given) > 1:
        raise typer.BadParameter(f"use only one of {', '.join(given)}")
    if at:
        return {"type": "scheduled", "run_at": at}
    if every:
        return {"type": "interval", "interval_seconds": every}
    if cron:
        return {"type": "cron", "cron": cron}
    return {"type": "adhoc"}


@app.command()
def create(
    target: ActionTarget,
    args: ActionArgs = None,
    kwargs: KwargsOption = None,
    arg_json: ArgJsonOption = None,
    ownership: Annotated[str, typer.Option(help="all, anyone or specific.")] = "anyone",
    agent: Annotated[
        str | None, typer.Option("--target", help="Agent name; required with --ownership specific.")
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="Only agents with these labels: k=v,k2=v2.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before an execution times out.")
    ] = None,
    max_retries: Annotated[int, typer.Option(help="Retries after a failed execution.")] = 0,
    name: Annotated[str | None, typer.Option(help="Task name (default: PLUGIN.ACTION).")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes a retried create return the same task.")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="Run once at this ISO 8601 time.")] = None,
    every: Annotated[float | None, typer.Option("--every", help="Run every S seconds.")] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="Run on this 5-field cron expression.")
    ] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="IANA time zone of --cron (default: UTC).")
    ] = None,
    end_at: Annotated[
        str | None,
        typer.Option("--end-at", help="With --every or --cron: no run after this ISO 8601 time."),
    ] = None,
    max_runs: Annotated[
        int | None,
        typer.Option("--max-runs", min=1, help="With --every or --cron: end after N runs."),
    ] = None,
    jitter: Annotated[
        float | None,
        typer.Option("--jitter", min=0, help="Start each run up to S seconds after its time."),
    ] = None,
    overlap: Annotated[
        str | None,
        typer.Option(
            "--overlap",
            help="A firing while the previous run is unfinished: skip (default), queue_one, "
            "allow or cancel_previous.",
        ),
    ] = None,
    missed: Annotated[
        str | None,
        typer.Option(
            "--missed",
            help="Firings missed while the server was down or the task paused: run_once "
            "(default), skip or run_all.",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the task to finish (exit 0 if it succeeded).")
    ] = False,
    wait_timeout: Annotated[
        float | None,
        typer.Option("--wait-timeout", help="With --wait: give up after S seconds (exit 2)."),
    ] = None,
    as_json: JsonFlag = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Create a task that runs PLUGIN.ACTION with ARGS.

    For example: octopus task create echo.echo 1 '"two"' --kwargs '{"three": true}' --wait
    """
    plugin, action = split_action(target)
    body: dict[str, Any] = {
        "plugin": plugin,
        "action": action,
        "args": parse_args(args or [], arg_json),
        "kwargs": parse_kwargs(kwargs),
        "ownership": ownership,
        "labels": _labels(labels),
        "max_retries": max_retries,
        **_schedule(at, every, cron),
    }
    optional = {
        "name": name,
        "target": agent,
        "timeout_seconds": timeout,
        "timezone": tz,
        "end_at": end_at,
        "max_runs": max_runs,
        "jitter_seconds": jitter,
        "overlap_policy": overlap,
        "missed_policy": missed,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    with Client.from_options(server, token) as client:
        data = client.post("/api/v1/tasks", body, headers=headers)
        task = TaskRead.model_validate(data)
        if as_json:
            _print_json(data)
        else:
            typer.echo(
                f"task {task.id} created: {task.name} ({task.ownership.value}), {task.status.value}"
            )
        if wait:
            _wait_and_exit(client, task.id, wait_timeout, POLL_SECONDS)


@app.command("list")
def list_tasks(
    status: Annotated[str | None, typer.Option(help="Only tasks with this status.")] = None,
    task_type: Annotated[
        str | None, typer.Option("--type", help="adhoc, scheduled, interval or cron.")
    ] = None,
    plugin: Annotated[str | None, typer.Option(help="Only tasks of this plugin.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (newest first).")] = 0,
    as_json: JsonFlag = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """List tasks, newest first."""
    with Client.from_options(server, token) as client:
        data = client.get(
            "/api/v1/tasks",
            status=status,
            type=task_type,
            plugin=plugin,
            limit=limit,
            offset=offset,
        )
    if as_json:
        _print_json(data)
        return
    page = Page[TaskRead].model_validate(data)
    render.stdout().print(render.tasks_table(page.items, page.total))


@app.command()
def show(
    task_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    as_json: JsonFlag = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Show a task with its next five fire times (in its zone), its runs and executions."""
    with Client.from_options(server, token) as client:
        data = client.get(f"/api/v1/tasks/{task_id}")
    if as_json:
        _print_json(data)
        return
    render.show_task(render.stdout(), TaskDetail.model_validate(data))


@app.command()
def cancel(
    task_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a task: queued executions are cancelled, running ones are stopped."""
    with Client.from_options(server, token) as client:
        task = TaskRead.model_validate(client.post(f"/api/v1/tasks/{task_id}/cancel"))
    typer.echo(f"task {task.id}: {task.status.value}")


def _control(task_id: int, verb: str, server: str | None, token: str | None) -> None:
    with Client.from_options(server, token) as client:
        task = TaskRead.model_validate(client.post(f"/api/v1/tasks/{task_id}/{verb}"))
    line = f"task {task.id}: {task.status.value}"
    if task.next_run_at is not None:
        line += f", next run {render.when(task.next_run_at)}"
    typer.echo(line)


@app.command()
def pause(
    task_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Pause an interval or cron task: nothing fires until it is resumed."""
    _control(task_id, "pause", server, token)


@app.command()
def resume(
    task_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Resume a paused task; fire times missed meanwhile follow its missed-run policy."""
    _control(task_id, "resume", server, token)


@app.command("run")
def run_now(
    task_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Run an interval or cron task now, once, besides its schedule."""
    with Client.from_options(server, token) as client:
        run = RunRead.model_validate(client.post(f"/api/v1/tasks/{task_id}/run"))
    typer.echo(f"task {task_id}: run {run.id} fired {render.when(run.fire_time)}")


@app.command("wait")
def wait_command(
    task_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    timeout: WaitTimeout = None,
    interval: PollInterval = POLL_SECONDS,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Wait for a task to finish, showing its progress.

    Exit code 0 if it succeeded, 1 if it failed or was cancelled, 2 on timeout.
    """
    with Client.from_options(server, token) as client:
        _wait_and_exit(client, task_id, timeout, interval)


@app.command()
def logs(
    task_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    execution: Annotated[
        int | None, typer.Option("--execution", help="Only this execution's log.")
    ] = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Print the captured stdout and stderr of a task's executions, oldest first."""
    console = render.stdout()
    with Client.from_options(server, token) as client:
        task = TaskDetail.model_validate(client.get(f"/api/v1/tasks/{task_id}"))
        executions = sorted((e for run in task.runs for e in run.executions), key=lambda e: e.id)
        if execution is not None:
            executions = [e for e in executions if e.id == execution]
        if not executions:
            console.print(f"task {task_id} has no executions yet")
        for item in executions:
            log = LogRead.model_validate(client.get(f"/api/v1/executions/{item.id}/log"))
            _print_log(console, item, log)


def _print_log(console: Console, execution: ExecutionRead, log: LogRead) -> None:
    title = (
        f"execution {execution.id} on {execution.agent or '-'}, attempt {execution.attempt}: "
        f"{execution.status.value}"
    )
    console.print(f"== {title}", style="bold", markup=False, highlight=False)
    console.print(log.log.rstrip("\n") or "(no output)", markup=False, highlight=False)
    if log.truncated:
        console.print("(output truncated)")


def progress_line(task: TaskDetail) -> str:
    """``task 7: running (1/3 succeeded, 2 running)``, from the newest run's roll-up."""
    line = f"task {task.id}: {task.status.value}"
    if task.runs:
        line += f" ({task.runs[0].summary})"
    return line


def wait_for_task(
    client: Client,
    task_id: int,
    timeout: float | None,
    interval: float,
    on_change: Callable[[str], None],
) -> TaskDetail | None:
    """Poll until the task is succeeded, failed or cancelled; None when ``timeout`` passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    while True:
        task = TaskDetail.model_validate(client.get(f"/api/v1/tasks/{task_id}"))
        line = progress_line(task)
        if line != last:
            on_change(line)
            last = line
        if task.status in TASK_TERMINAL:
            return task
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(
            interval if deadline is None else min(interval, max(deadline - time.monotonic(), 0))
        )


def _wait_and_exit(client: Client, task_id: int, timeout: float | None, interval: float) -> None:
    err = Console(stderr=True, highlight=False)
    if err.is_terminal:
        with err.status(f"task {task_id}: waiting") as status:
            task = wait_for_task(client, task_id, timeout, interval, status.update)
    else:
        task = wait_for_task(client, task_id, timeout, interval, err.print)
    if task is None:
        typer.echo(f"task {task_id}: still not finished after {timeout:g}s", err=True)
        raise typer.Exit(EXIT_TIMEOUT)
    typer.echo(progress_line(task))
    if task.status is not TaskStatus.SUCCEEDED:
        raise typer.Exit(EXIT_FAILED)
