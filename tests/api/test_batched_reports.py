"""POST /api/v1/agents/{name}/reports: many outcomes in one request, each fenced on its own."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import AgentClient
from tests.api.test_tasks import claim

HELLO = {"plugin": "example", "action": "hello"}


def send(client: TestClient, name: str, headers: dict[str, str], reports: list[Any]) -> Any:
    return client.post(f"/api/v1/agents/{name}/reports", json={"reports": reports}, headers=headers)


def status_of(client: TestClient, task_id: int) -> str:
    status: str = client.get(f"/api/v1/tasks/{task_id}").json()["status"]
    return status


def test_many_outcomes_are_recorded_in_one_request(client: TestClient, enroll: AgentClient) -> None:
    headers = enroll("a1", concurrency=4)
    bodies = [HELLO, HELLO, {**HELLO, "max_retries": 1, "retry_backoff_seconds": 0}]
    tasks = client.post("/api/v1/tasks/bulk", json={"tasks": bodies}).json()["tasks"]
    work = claim(client, "a1", headers, slots=3)["executions"]
    by_task = {w["task_id"]: w["id"] for w in work}
    ids = [by_task[task["id"]] for task in tasks]
    response = send(
        client,
        "a1",
        headers,
        [
            {"execution_id": ids[0], "status": "succeeded", "result": {"n": 1}},
            {"execution_id": ids[1], "status": "failed", "error": {"type": "E", "message": "m"}},
            {"execution_id": ids[2], "status": "failed"},
        ],
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["id"], r["status"], r["refused"]) for r in results] == [
        (ids[0], "succeeded", None),
        (ids[1], "failed", None),
        (ids[2], "failed", None),
    ]
    assert [status_of(client, task["id"]) for task in tasks] == ["succeeded", "failed", "running"]
    (retry,) = claim(client, "a1", headers)["executions"]
    assert retry["task_id"] == tasks[2]["id"] and retry["attempt"] == 2
    execution = client.get(f"/api/v1/executions/{ids[0]}").json()
    assert execution["result"] == {"n": 1}


def test_a_fenced_or_unknown_report_is_refused_alone(
    client: TestClient, enroll: AgentClient
) -> None:
    headers = enroll("a1")
    tasks = client.post("/api/v1/tasks/bulk", json={"tasks": [HELLO, HELLO]}).json()["tasks"]
    first, second = sorted(w["id"] for w in claim(client, "a1", headers)["executions"])
    done = send(client, "a1", headers, [{"execution_id": first, "status": "succeeded"}])
    assert done.json()["results"][0]["status"] == "succeeded"

    response = send(
        client,
        "a1",
        headers,
        [
            {"execution_id": first, "status": "failed"},
            {"execution_id": 999_999, "status": "succeeded"},
            {"execution_id": second, "status": "succeeded"},
        ],
    )
    assert response.status_code == 200, response.text
    fenced, unknown, recorded = response.json()["results"]
    assert fenced["refused"] == "fenced" and fenced["status"] is None
    assert "succeeded" in fenced["reason"]
    assert unknown["refused"] == "not_found"
    assert recorded["status"] == "succeeded" and recorded["refused"] is None
    assert [status_of(client, task["id"]) for task in tasks] == ["succeeded", "succeeded"]


def test_reports_for_another_agents_executions_are_fenced(
    client: TestClient, enroll: AgentClient
) -> None:
    owner = enroll("a1")
    other = enroll("a2")
    task = client.post("/api/v1/tasks", json={**HELLO, "ownership": "specific", "target": "a1"})
    (work,) = claim(client, "a1", owner)["executions"]
    response = send(client, "a2", other, [{"execution_id": work["id"], "status": "succeeded"}])
    assert response.json()["results"][0]["refused"] == "fenced"
    assert status_of(client, task.json()["id"]) == "running"
    assert (
        send(client, "a1", other, [{"execution_id": work["id"], "status": "failed"}]).status_code
        == 403
    )


def test_a_batch_of_the_wrong_size_or_shape_is_refused(
    client: TestClient, enroll: AgentClient
) -> None:
    headers = enroll("a1")
    for reports, field in (
        ([], "reports"),
        ([{"execution_id": 1, "status": "succeeded"}] * 1001, "reports"),
        ([{"status": "succeeded"}], "reports.0.execution_id"),
        ([{"execution_id": 1, "status": "running"}], "reports.0.status"),
    ):
        response = send(client, "a1", headers, reports)
        assert response.status_code == 422, response.text
        assert response.json()["details"][0]["field"] == field
    anonymous = client.post(
        "/api/v1/agents/a1/reports", json={"reports": []}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
