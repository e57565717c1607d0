"""The overview: agents, tasks by status, success rate, throughput, upcoming and failures."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from octopus.core.enums import AgentStatus, ExecutionStatus, TaskStatus
from octopus.server.clock import utcnow
from octopus.server.dashboard.charts import FAILED, build_chart
from octopus.server.dashboard.deps import CurrentSession, State
from octopus.server.dashboard.render import page

router = APIRouter(include_in_schema=False)

DAY = timedelta(days=1)


def success_rate(outcomes: dict[ExecutionStatus, int]) -> float | None:
    """Succeeded over succeeded plus failed, timed out and lost (cancelled ones left out)."""
    succeeded = outcomes.get(ExecutionStatus.SUCCEEDED, 0)
    failed = sum(outcomes.get(status, 0) for status in FAILED)
    return succeeded / (succeeded + failed) if succeeded + failed else None


@router.get("/")
def overview(request: Request, session: CurrentSession, state: State) -> HTMLResponse:
    """The fleet at a glance."""
    store, now = state.store, utcnow()
    agents = store.list_agents()
    by_status = {status: [a for a in agents if a.status is status] for status in AgentStatus}
    outcomes = store.outcome_counts(since=now - DAY)
    per_minute = store.executions_per_minute(since=now - DAY)
    charts = [
        build_chart("Last hour, per minute", per_minute, now=now, minutes=60, bucket_minutes=1),
        build_chart(
            "Last day, per 10 minutes", per_minute, now=now, minutes=1440, bucket_minutes=10
        ),
    ]
    return page(
        request,
        "overview.html",
        session,
        topics="tasks executions agents",
        agents_by_status=by_status,
        task_counts=store.task_counts(),
        task_statuses=list(TaskStatus),
        outcomes=outcomes,
        rate=success_rate(outcomes),
        charts=charts,
        upcoming=store.upcoming_tasks(limit=10),
        failures=store.recent_failures(limit=10),
        now=now,
    )
