"""Prometheus metrics of one server: its own registry, event counters and histograms, gauges
read from the store at scrape time, request timings, and the ``/metrics`` route.

Each app gets its own ``CollectorRegistry`` (never the process-wide default), so several apps
in one process (tests, the bench) keep separate figures. Gauges that describe the store (queue
depth, executions by status, agents by status) are counted by the store when Prometheus
scrapes, so they are right after a restart and with several replicas, and nothing has to keep
them in step by hand.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from octopus.core.enums import AgentStatus, ExecutionStatus
from octopus.server.auth import Admin
from octopus.store.base import Changes, Store

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0
)  # fmt: skip
"""Seconds: from a millisecond (a warm idle agent) to a minute (a backlog)."""
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
UNMATCHED = "unmatched"
"""The route label of a request no route took (one label, whatever the path)."""


class StoreCollector(Collector):
    """Gauges counted by the store at scrape time: executions and agents by status."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterable[Metric]:
        counts = self._store.status_counts()
        executions = GaugeMetricFamily(
            "octopus_executions", "Executions stored, by status.", labels=["status"]
        )
        for status in ExecutionStatus:
            executions.add_metric([status.value], counts.executions.get(status, 0))
        agents = GaugeMetricFamily(
            "octopus_agents", "Enrolled agents, by status.", labels=["status"]
        )
        for agent_status in AgentStatus:
            agents.add_metric([agent_status.value], counts.agents.get(agent_status, 0))
        queued = counts.executions.get(ExecutionStatus.QUEUED, 0)
        online = counts.agents.get(AgentStatus.ONLINE, 0)
        yield executions
        yield agents
        yield GaugeMetricFamily(
            "octopus_queue_depth", "Executions queued and not started yet.", value=queued
        )
        yield GaugeMetricFamily("octopus_agents_online", "Agents online now.", value=online)

    def describe(self) -> Iterable[Metric]:
        return []  # no store query when the collector is registered


class Metrics:
    """The metrics of one server process."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        registry = self.registry
        self.tasks_created = Counter(
            "octopus_tasks_created", "Tasks created (API, bulk API, dashboard).", registry=registry
        )
        self.heartbeats = Counter(
            "octopus_heartbeats", "Agent heartbeats recorded.", registry=registry
        )
        self.dispatch_latency = Histogram(
            "octopus_dispatch_latency_seconds",
            "From an execution being queued to its action starting on an agent.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.schedule_lag = Histogram(
            "octopus_schedule_lag_seconds",
            "From a scheduled, interval or cron run's fire time to its first execution's start.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.request_duration = Histogram(
            "octopus_http_request_duration_seconds",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        registry.register(StoreCollector(store))
        store.listen(self.committed)

    def committed(self, changes: Changes) -> None:
        """The store's listener: count the tasks created, and observe the dispatch latency of
        executions that ran and the schedule lag of the first attempts of scheduled runs."""
        if changes.tasks_created:
            self.tasks_created.inc(changes.tasks_created)
        for execution in changes.started:
            waited = (execution.started_at - execution.queued_at).total_seconds()
            self.dispatch_latency.observe(max(0.0, waited))
            if execution.fire_time is not None:
                late = (execution.started_at - execution.fire_time).total_seconds()
                self.schedule_lag.observe(max(0.0, late))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (runs the store's count queries)."""
        return generate_latest(self.registry)


async def get_metrics(request: Request) -> Metrics:
    """The Metrics of the app serving ``request``."""
    metrics: Metrics = request.app.state.metrics
    return metrics


AppMetrics = Annotated[Metrics, Depends(get_metrics)]


class RequestTimer:
    """ASGI middleware that times each HTTP request under its route template (``/api/v1/tasks/
    {task_id}``, never the concrete path, so the label set stays small) and counts heartbeats."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, heartbeat_route: str) -> None:
        self._app = app
        self._metrics = metrics
        self._heartbeat_route = heartbeat_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_timed)
        finally:
            self._observe(scope, status, time.perf_counter() - began)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        labels = (route, scope["method"], str(status))
        self._metrics.request_duration.labels(*labels).observe(seconds)
        # Counted here, from the outcome of the heartbeat route, so the route stays as it is.
        if route == self._heartbeat_route and status == 200:
            self._metrics.heartbeats.inc()


router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    dependencies=[Admin],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(app_metrics: AppMetrics) -> Response:
    """Prometheus metrics in the text format: tasks created, executions and agents by status,
    queue depth, dispatch latency and schedule lag histograms, heartbeats, and HTTP request
    durations by route. Needs the admin token."""
    return Response(app_metrics.render(), media_type=CONTENT_TYPE_LATEST)
