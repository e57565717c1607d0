"""Turns domain records into wire models."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from octopus.core.models import Agent, Execution, Plugin, Run, Task
from octopus.core.plan import upcoming_times
from octopus.core.rollup import roll_up
from octopus.schemas.agents import AgentRead
from octopus.schemas.common import ErrorInfo
from octopus.schemas.plugins import ActionRead, ParamRead, PluginRead
from octopus.schemas.tasks import ExecutionRead, RunRead, TaskDetail, TaskRead


def task_read(task: Task) -> TaskRead:
    """A task as the API shows it."""
    spec = task.spec
    return TaskRead(
        id=task.id,
        name=spec.name,
        plugin=spec.plugin,
        action=spec.action,
        args=spec.args,
        kwargs=spec.kwargs,
        type=spec.type,
        ownership=spec.ownership,
        target=spec.target,
        labels=spec.labels,
        timeout_seconds=spec.timeout_seconds,
        max_retries=spec.max_retries,
        retry_backoff_seconds=spec.retry_backoff_seconds,
        on_lost=spec.on_lost,
        status=task.status,
        last_run_status=task.last_run_status,
        run_at=spec.run_at,
        interval_seconds=spec.interval_seconds,
        start_at=spec.start_at,
        cron=spec.cron,
        timezone=spec.timezone,
        end_at=spec.end_at,
        max_runs=spec.max_runs,
        jitter_seconds=spec.jitter_seconds,
        overlap_policy=spec.overlap_policy,
        missed_policy=spec.missed_policy,
        run_count=task.run_count,
        last_fire_time=task.last_fire_time,
        next_run_at=task.next_run_at,
        created_at=task.created_at,
        updated_at=task.updated_at,
    )


def execution_read(execution: Execution) -> ExecutionRead:
    """An execution as the API shows it."""
    error = execution.error
    return ExecutionRead(
        id=execution.id,
        run_id=execution.run_id,
        task_id=execution.task_id,
        agent=execution.agent,
        status=execution.status,
        attempt=execution.attempt,
        retry_of=execution.retry_of,
        result=execution.result,
        error=ErrorInfo(type=error.type, message=error.message, traceback=error.traceback)
        if error
        else None,
        queued_at=execution.queued_at,
        started_at=execution.started_at,
        finished_at=execution.finished_at,
        lease_expires_at=execution.lease_expires_at,
    )


def run_read(run: Run, executions: Sequence[Execution]) -> RunRead:
    """A run with its executions and their roll-up."""
    rollup = roll_up(executions)
    return RunRead(
        id=run.id,
        task_id=run.task_id,
        fire_time=run.fire_time,
        status=run.status,
        reason=run.reason,
        started_at=run.started_at,
        finished_at=run.finished_at,
        counts=rollup.counts,
        summary=rollup.summary(),
        executions=[execution_read(e) for e in sorted(executions, key=lambda e: e.id)],
    )


def runs_read(runs: Sequence[Run], executions: Sequence[Execution]) -> list[RunRead]:
    """Runs, each with its own executions among ``executions``."""
    by_run: dict[int, list[Execution]] = defaultdict(list)
    for execution in executions:
        by_run[execution.run_id].append(execution)
    return [run_read(run, by_run[run.id]) for run in runs]


def task_detail(task: Task, runs: Sequence[Run], executions: Sequence[Execution]) -> TaskDetail:
    """A task with its next fire times (in its zone) and its runs, each with its executions."""
    return TaskDetail(
        **task_read(task).model_dump(),
        upcoming=upcoming_times(
            task.spec,
            created_at=task.created_at,
            run_count=task.run_count,
            next_run_at=task.next_run_at,
        ),
        runs=runs_read(runs, executions),
    )


def agent_read(agent: Agent) -> AgentRead:
    """An agent as the API shows it."""
    facts = agent.facts
    return AgentRead(
        name=agent.name,
        status=agent.status,
        labels=agent.labels,
        hostname=facts.hostname,
        ip=facts.ip,
        os_user=facts.os_user,
        pid=facts.pid,
        version=facts.version,
        started_at=facts.started_at,
        last_heartbeat=agent.last_heartbeat,
        enrolled_at=agent.enrolled_at,
        concurrency=facts.concurrency,
        free_slots=facts.free_slots,
        running=list(facts.running),
        plugin_versions=facts.plugin_versions,
        cpu_percent=facts.cpu_percent,
        memory_percent=facts.memory_percent,
    )


def plugin_read(plugin: Plugin) -> PluginRead:
    """A plugin with its actions."""
    return PluginRead(
        name=plugin.name,
        sha256=plugin.sha256,
        version=plugin.version,
        size=plugin.size,
        updated_at=plugin.updated_at,
        actions=[
            ActionRead(
                name=a.name,
                params=[
                    ParamRead(
                        name=p.name,
                        kind=p.kind,
                        annotation=p.annotation,
                        default=p.default,
                        required=p.required,
                    )
                    for p in a.params
                ],
                returns=a.returns,
                doc=a.doc,
            )
            for a in plugin.actions
        ],
    )
