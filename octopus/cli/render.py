"""Rich tables and short text forms of tasks, runs, executions, agents and plugins."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from octopus.schemas.agents import AgentRead
from octopus.schemas.plugins import ActionRead, ParamRead, PluginRead
from octopus.schemas.tasks import ExecutionRead, RunRead, TaskDetail, TaskRead

MAX_CELL = 60
PIPE_WIDTH = 200


def stdout() -> Console:
    """The console for results: the terminal's width, or wide lines when piped to a script."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def when(value: datetime | None) -> str:
    """A timestamp in UTC to the second (``2026-01-31 09:00:00Z``), or '-'."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def short_json(value: Any, limit: int = MAX_CELL) -> str:
    """Compact JSON of ``value`` cut to ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _table(*columns: str, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", show_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def tasks_table(tasks: list[TaskRead], total: int) -> Table:
    """One row per task, newest first."""
    table = _table(
        "ID",
        "NAME",
        "ACTION",
        "TYPE",
        "OWNERSHIP",
        "STATUS",
        "LAST RUN",
        "CREATED",
        title=f"{len(tasks)} of {total} tasks",
    )
    for task in tasks:
        table.add_row(
            str(task.id),
            task.name,
            f"{task.plugin}.{task.action}",
            task.type.value,
            task.ownership.value + (f" ({task.target})" if task.target else ""),
            task.status.value,
            task.last_run_status.value if task.last_run_status else "-",
            when(task.created_at),
        )
    return table


def task_summary(task: TaskRead) -> Table:
    """The fields of one task as a two-column grid."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows = {
        "task": f"{task.id} {task.name}",
        "action": f"{task.plugin}.{task.action}",
        "args": short_json(task.args, 200),
        "kwargs": short_json(task.kwargs, 200),
        "type": task.type.value,
        "ownership": task.ownership.value + (f" -> {task.target}" if task.target else ""),
        "labels": short_json(task.labels) if task.labels else "-",
        "timeout": f"{task.timeout_seconds:g}s" if task.timeout_seconds else "-",
        "max retries": str(task.max_retries),
        "status": task.status.value,
        **_schedule_rows(task),
        "next run": when(task.next_run_at),
        "created": when(task.created_at),
    }
    for key, value in rows.items():
        grid.add_row(key, Text(value))
    return grid


def _schedule_rows(task: TaskRead) -> dict[str, str]:
    """The timing fields that apply to the task's type."""
    rows: dict[str, str] = {}
    if task.run_at is not None:
        rows["run at"] = when(task.run_at)
    if task.interval_seconds is not None:
        start = f" from {when(task.start_at)}" if task.start_at else ""
        rows["every"] = f"{task.interval_seconds:g}s{start}"
    if task.cron is not None:
        rows["cron"] = f"{task.cron} ({task.timezone})"
    if task.type.repeats:
        limits = [f"until {when(task.end_at)}"] if task.end_at else []
        if task.max_runs is not None:
            limits.append(f"{task.run_count}/{task.max_runs} runs")
        rows["limits"] = ", ".join(limits) or "-"
        rows["policies"] = f"overlap {task.overlap_policy.value}, missed {task.missed_policy.value}"
        rows["last run"] = task.last_run_status.value if task.last_run_status else "-"
    if task.jitter_seconds:
        rows["jitter"] = f"{task.jitter_seconds:g}s"
    return rows


def local_when(value: datetime, zone: str) -> str:
    """A timestamp in the IANA ``zone``, with offset and abbreviation
    (``2026-03-08 03:00:00 -0400 EDT``)."""
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %z %Z")


def outcome(execution: ExecutionRead) -> str:
    """The result of a succeeded execution, or its error, in one short line."""
    if execution.error is not None:
        return f"{execution.error.type}: {execution.error.message}"[:MAX_CELL]
    if execution.status.value == "succeeded":
        return short_json(execution.result)
    return "-"


def run_table(run: RunRead) -> Table:
    """One run: its executions with agent, attempt, status, times and outcome."""
    title = f"run {run.id} fired {when(run.fire_time)}: {run.status.value} ({run.summary})"
    if run.reason and run.reason != run.summary:
        title += f", {run.reason}"
    table = _table(
        "EXECUTION", "AGENT", "ATTEMPT", "STATUS", "STARTED", "FINISHED", "OUTCOME", title=title
    )
    for execution in run.executions:
        table.add_row(
            str(execution.id),
            execution.agent or "-",
            str(execution.attempt),
            execution.status.value,
            when(execution.started_at),
            when(execution.finished_at),
            outcome(execution),
        )
    return table


def show_task(console: Console, task: TaskDetail) -> None:
    """Print a task, then each of its runs (newest first) with its executions."""
    console.print(task_summary(task))
    if task.upcoming:
        console.print(f"\nnext fire times ({task.timezone}):")
        for moment in task.upcoming:
            console.print(f"  {local_when(moment, task.timezone)}", markup=False)
    if not task.runs:
        console.print("\nno runs yet")
    for run in task.runs:
        console.print()
        console.print(run_table(run))


def agents_table(agents: list[AgentRead], total: int) -> Table:
    """One row per agent."""
    table = _table(
        "NAME",
        "STATUS",
        "LABELS",
        "HOST",
        "SLOTS",
        "RUNNING",
        "LAST HEARTBEAT",
        "VERSION",
        title=f"{len(agents)} of {total} agents",
    )
    for agent in agents:
        labels = ",".join(f"{k}={v}" for k, v in sorted(agent.labels.items()))
        table.add_row(
            agent.name,
            agent.status.value,
            labels or "-",
            agent.hostname or "-",
            f"{agent.free_slots}/{agent.concurrency}",
            str(len(agent.running)),
            when(agent.last_heartbeat),
            agent.version or "-",
        )
    return table


def agent_detail(agent: AgentRead) -> Table:
    """The fields of one agent as a two-column grid."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows = {
        "agent": agent.name,
        "status": agent.status.value,
        "labels": ",".join(f"{k}={v}" for k, v in sorted(agent.labels.items())) or "-",
        "host": f"{agent.hostname} ({agent.ip})" if agent.ip else agent.hostname or "-",
        "user / pid": f"{agent.os_user or '-'} / {agent.pid}",
        "version": agent.version or "-",
        "started": when(agent.started_at),
        "enrolled": when(agent.enrolled_at),
        "last heartbeat": when(agent.last_heartbeat),
        "slots": f"{agent.free_slots} free of {agent.concurrency}",
        "running": ", ".join(map(str, agent.running)) or "-",
        "cpu / memory": f"{agent.cpu_percent:.0f}% / {agent.memory_percent:.0f}%",
        "plugins": ", ".join(f"{k}@{v[:12]}" for k, v in sorted(agent.plugin_versions.items()))
        or "-",
    }
    for key, value in rows.items():
        grid.add_row(key, Text(value))
    return grid


def _param_text(param: ParamRead) -> str:
    kind = param.kind.lower()
    prefix = "*" if "var_positional" in kind else "**" if "var_keyword" in kind else ""
    text = prefix + param.name
    if param.annotation:
        text += f": {param.annotation}"
    if param.default is not None:
        text += f" = {param.default}" if param.annotation else f"={param.default}"
    return text


def signature(action: ActionRead) -> str:
    """``name(a: int, *rest, flag: bool = False) -> str`` from an action's parameters."""
    parts: list[str] = []
    star_seen = False
    kinds = [param.kind.lower() for param in action.params]
    for index, (param, kind) in enumerate(zip(action.params, kinds, strict=True)):
        if "keyword_only" in kind and not star_seen:
            parts.append("*")
        star_seen = star_seen or "keyword_only" in kind or "var_positional" in kind
        parts.append(_param_text(param))
        if kind == "positional_only" and "positional_only" not in kinds[index + 1 : index + 2]:
            parts.append("/")
    returns = f" -> {action.returns}" if action.returns else ""
    return f"{action.name}({', '.join(parts)}){returns}"


def actions_table(actions: list[ActionRead], title: str) -> Table:
    """One row per action: signature and the first line of its docstring."""
    table = _table("ACTION", "DESCRIPTION", title=title)
    for action in actions:
        doc = (action.doc or "").strip().splitlines()
        table.add_row(signature(action), doc[0] if doc else "")
    return table


def plugins_table(plugins: list[PluginRead]) -> Table:
    """One row per plugin with its version and actions."""
    table = _table(
        "PLUGIN", "SHA256", "SIZE", "UPDATED", "ACTIONS", title=f"{len(plugins)} plugins"
    )
    for plugin in plugins:
        table.add_row(
            plugin.name,
            plugin.sha256[:12],
            str(plugin.size),
            when(plugin.updated_at),
            ", ".join(action.name for action in plugin.actions) or "-",
        )
    return table
