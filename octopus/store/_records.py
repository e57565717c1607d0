"""Turning table rows into the domain records of core.models, and plugin actions into JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from octopus.core.enums import (
    AgentStatus,
    ExecutionStatus,
    MissedPolicy,
    OnLost,
    OverlapPolicy,
    Ownership,
    RunStatus,
    TaskStatus,
    TaskType,
)
from octopus.core.models import (
    JSON,
    ActionSpec,
    Agent,
    AgentFacts,
    Execution,
    ExecutionError,
    ParamSpec,
    Plugin,
    Run,
    Task,
    TaskSpec,
)
from octopus.store._prepared import Record
from octopus.store.tables import executions


def spec_values(spec: TaskSpec) -> dict[str, Any]:
    """The ``tasks`` columns that hold a TaskSpec."""
    return {
        "name": spec.name,
        "plugin": spec.plugin,
        "action": spec.action,
        "args": list(spec.args),
        "kwargs": dict(spec.kwargs),
        "type": spec.type.value,
        "ownership": spec.ownership.value,
        "target": spec.target,
        "labels": dict(spec.labels),
        "timeout_seconds": spec.timeout_seconds,
        "max_retries": spec.max_retries,
        "retry_backoff_seconds": spec.retry_backoff_seconds,
        "on_lost": spec.on_lost.value,
        "run_at": spec.run_at,
        "interval_seconds": spec.interval_seconds,
        "start_at": spec.start_at,
        "cron": spec.cron,
        "timezone": spec.timezone,
        "end_at": spec.end_at,
        "max_runs": spec.max_runs,
        "jitter_seconds": spec.jitter_seconds,
        "overlap_policy": spec.overlap_policy.value,
        "missed_policy": spec.missed_policy.value,
    }


def spec_from_row(row: Record) -> TaskSpec:
    """The TaskSpec held by a ``tasks`` row."""
    return TaskSpec(
        name=row["name"],
        plugin=row["plugin"],
        action=row["action"],
        args=row["args"],
        kwargs=row["kwargs"],
        type=TaskType(row["type"]),
        ownership=Ownership(row["ownership"]),
        target=row["target"],
        labels=row["labels"],
        timeout_seconds=row["timeout_seconds"],
        max_retries=row["max_retries"],
        retry_backoff_seconds=row["retry_backoff_seconds"],
        on_lost=OnLost(row["on_lost"]),
        run_at=row["run_at"],
        interval_seconds=row["interval_seconds"],
        start_at=row["start_at"],
        cron=row["cron"],
        timezone=row["timezone"],
        end_at=row["end_at"],
        max_runs=row["max_runs"],
        jitter_seconds=row["jitter_seconds"],
        overlap_policy=OverlapPolicy(row["overlap_policy"]),
        missed_policy=MissedPolicy(row["missed_policy"]),
    )


def task_from_row(row: Record) -> Task:
    """A Task from a ``tasks`` row."""
    last = row["last_run_status"]
    return Task(
        id=row["id"],
        spec=spec_from_row(row),
        status=TaskStatus(row["status"]),
        last_run_status=RunStatus(last) if last is not None else None,
        next_run_at=row["next_run_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        run_count=row["run_count"],
        last_fire_time=row["last_fire_time"],
        waiting_run_id=row["waiting_run_id"],
    )


def run_from_row(row: Record) -> Run:
    """A Run from a ``runs`` row."""
    return Run(
        id=row["id"],
        task_id=row["task_id"],
        fire_time=row["fire_time"],
        status=RunStatus(row["status"]),
        reason=row["reason"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def error_to_json(error: ExecutionError | None) -> dict[str, JSON] | None:
    """The JSON kept in ``executions.error``."""
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "traceback": error.traceback}


def error_from_json(value: dict[str, Any] | None) -> ExecutionError | None:
    """The ExecutionError kept in ``executions.error``."""
    if value is None:
        return None
    return ExecutionError(
        type=value["type"], message=value["message"], traceback=value.get("traceback")
    )


EXECUTION_COLUMNS = tuple(column for column in executions.c if column.name != "log")
"""What ``execution_from_row`` reads: every column but the captured log (up to 64 KB, read on
its own where it is shown), so reading executions never drags their logs along."""


def execution_from_row(row: Record) -> Execution:
    """An Execution from an ``executions`` row."""
    return Execution(
        id=row["id"],
        run_id=row["run_id"],
        task_id=row["task_id"],
        ownership=Ownership(row["ownership"]),
        agent=row["agent"],
        attempt=row["attempt"],
        retry_of=row["retry_of"],
        status=ExecutionStatus(row["status"]),
        not_before=row["not_before"],
        lease_expires_at=row["lease_expires_at"],
        plugin_sha256=row["plugin_sha256"],
        result=row["result"],
        error=error_from_json(row["error"]),
        queued_at=row["queued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def agent_from_row(row: Record) -> Agent:
    """An Agent from an ``agents`` row."""
    facts = AgentFacts(
        hostname=row["hostname"],
        ip=row["ip"],
        os_user=row["os_user"],
        pid=row["pid"],
        started_at=row["started_at"],
        concurrency=row["concurrency"],
        free_slots=row["free_slots"],
        running=tuple(row["running"]),
        plugin_versions=row["plugin_versions"],
        cpu_percent=row["cpu_percent"],
        memory_percent=row["memory_percent"],
        version=row["version"],
    )
    return Agent(
        id=row["id"],
        name=row["name"],
        status=AgentStatus(row["status"]),
        labels=row["labels"],
        facts=facts,
        last_heartbeat=row["last_heartbeat"],
        enrolled_at=row["enrolled_at"],
        revoked=row["revoked_at"] is not None,
    )


def facts_values(facts: AgentFacts) -> dict[str, Any]:
    """The ``agents`` columns that hold an agent's facts."""
    return {
        "hostname": facts.hostname,
        "ip": facts.ip,
        "os_user": facts.os_user,
        "pid": facts.pid,
        "version": facts.version,
        "started_at": facts.started_at,
        "concurrency": facts.concurrency,
        "free_slots": facts.free_slots,
        "running": list(facts.running),
        "plugin_versions": dict(facts.plugin_versions),
        "cpu_percent": facts.cpu_percent,
        "memory_percent": facts.memory_percent,
    }


def actions_to_json(actions: Sequence[ActionSpec]) -> list[dict[str, JSON]]:
    """The JSON kept in ``plugins.actions``."""
    return [
        {
            "name": action.name,
            "params": [
                {
                    "name": p.name,
                    "kind": p.kind,
                    "annotation": p.annotation,
                    "default": p.default,
                    "required": p.required,
                }
                for p in action.params
            ],
            "returns": action.returns,
            "doc": action.doc,
        }
        for action in actions
    ]


def actions_from_json(value: list[dict[str, Any]]) -> tuple[ActionSpec, ...]:
    """The ActionSpecs kept in ``plugins.actions``."""
    return tuple(
        ActionSpec(
            name=a["name"],
            params=tuple(ParamSpec(**p) for p in a["params"]),
            returns=a["returns"],
            doc=a["doc"],
        )
        for a in value
    )


def plugin_from_row(row: Record) -> Plugin:
    """A Plugin from a ``plugins`` row (without its source)."""
    return Plugin(
        name=row["name"],
        sha256=row["sha256"],
        actions=actions_from_json(row["actions"]),
        size=row["size"],
        updated_at=row["updated_at"],
        version=row["version"],
        signature=row["signature"],
    )
