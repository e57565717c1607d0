"""GET /metrics: Prometheus text with real figures after real tasks ran; admin token only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import AgentClient
from tests.api.test_tasks import claim, report

HELLO = {"plugin": "example", "action": "hello"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_real_tasks_executions_agents_and_requests(
    client: TestClient, enroll: AgentClient
) -> None:
    headers = enroll("a1")
    single = client.post("/api/v1/tasks", json=HELLO)
    bulk = client.post("/api/v1/tasks/bulk", json={"tasks": [HELLO, HELLO, HELLO]})
    assert single.status_code == bulk.status_code == 201
    work = claim(client, "a1", headers, slots=2)["executions"]
    assert len(work) == 2
    started = (datetime.now(UTC) - timedelta(seconds=0.2)).isoformat()
    ack = report(client, work[0]["id"], headers, status="succeeded", started_at=started)
    assert ack.status_code == 200
    assert report(client, work[1]["id"], headers, status="failed").status_code == 200

    samples = scrape(client)
    assert value(samples, "octopus_tasks_created_total") == 4
    assert value(samples, "octopus_executions", status="succeeded") == 1
    assert value(samples, "octopus_executions", status="failed") == 1
    assert value(samples, "octopus_executions", status="queued") == 2
    assert value(samples, "octopus_queue_depth") == 2
    assert value(samples, "octopus_agents_online") == 1
    assert value(samples, "octopus_agents", status="online") == 1
    assert value(samples, "octopus_heartbeats_total") == 1  # the one enroll() sends
    assert value(samples, "octopus_dispatch_latency_seconds_count") == 2
    assert value(samples, "octopus_dispatch_latency_seconds_bucket", le="0.001") < 2
    assert value(samples, "octopus_schedule_lag_seconds_count") == 0  # adhoc tasks only
    route = {"route": "/api/v1/tasks/bulk", "method": "POST", "status": "201"}
    assert value(samples, "octopus_http_request_duration_seconds_count", **route) == 1
    assert value(samples, "octopus_http_request_duration_seconds_sum", **route) > 0
    report_route = {
        "route": "/api/v1/executions/{execution_id}/report",
        "method": "POST",
        "status": "200",
    }
    assert value(samples, "octopus_http_request_duration_seconds_count", **report_route) == 2


def test_a_refused_create_counts_no_task(client: TestClient) -> None:
    bad = client.post("/api/v1/tasks/bulk", json={"tasks": [HELLO, {**HELLO, "plugin": "no"}]})
    assert bad.status_code == 422
    samples = scrape(client)
    assert value(samples, "octopus_tasks_created_total") == 0
    assert value(samples, "octopus_queue_depth") == 0
    route = {"route": "/api/v1/tasks/bulk", "method": "POST", "status": "422"}
    assert value(samples, "octopus_http_request_duration_seconds_count", **route) == 1


def test_schedule_lag_is_observed_for_a_scheduled_run(
    client: TestClient, enroll: AgentClient
) -> None:
    headers = enroll("a1")
    fire_at = datetime.now(UTC) + timedelta(seconds=0.3)
    task = client.post(
        "/api/v1/tasks", json={**HELLO, "type": "scheduled", "run_at": fire_at.isoformat()}
    ).json()
    (work,) = claim_when_fired(client, headers, task["id"])
    late = fire_at + timedelta(seconds=0.5)
    ack = report(client, work["id"], headers, status="succeeded", started_at=late.isoformat())
    assert ack.status_code == 200
    samples = scrape(client)
    assert value(samples, "octopus_schedule_lag_seconds_count") == 1
    assert 0.5 <= value(samples, "octopus_schedule_lag_seconds_sum") < 0.6


def claim_when_fired(
    client: TestClient, headers: dict[str, str], task_id: int
) -> list[dict[str, object]]:
    """Long-poll until the scheduler fired the task and its execution is ours."""
    for _ in range(20):
        response = client.post(
            "/api/v1/agents/a1/claim", json={"slots": 1, "wait_seconds": 1}, headers=headers
        )
        work: list[dict[str, object]] = response.json()["executions"]
        if work:
            assert work[0]["task_id"] == task_id
            return work
    raise AssertionError(f"task {task_id} never fired")


def test_metrics_need_the_admin_token(anonymous: TestClient, enroll: AgentClient) -> None:
    assert anonymous.get("/metrics").status_code == 401
    wrong = anonymous.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    agent = enroll("a1")
    assert anonymous.get("/metrics", headers=agent).status_code == 401


def test_each_app_has_its_own_registry(client: TestClient) -> None:
    assert client.post("/api/v1/tasks", json=HELLO).status_code == 201
    assert "octopus_tasks_created_total 1.0" in client.get("/metrics").text.splitlines()
    assert REGISTRY.get_sample_value("octopus_tasks_created_total") is None
