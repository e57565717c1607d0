"""Deleting a finished task through the API, and the refusals for unfinished or absent ones."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import AgentClient
from tests.api.test_tasks import claim, report


def _task(client: TestClient) -> int:
    created = client.post("/api/v1/tasks", json={"plugin": "example", "action": "hello"})
    assert created.status_code == 201, created.text
    task_id: int = created.json()["id"]
    return task_id


def test_a_finished_task_is_deleted_with_its_executions(
    client: TestClient, enroll: AgentClient
) -> None:
    headers = enroll("a1")
    task_id = _task(client)
    [work] = claim(client, "a1", headers)["executions"]
    done = report(client, work["id"], headers, status="succeeded", result="hi")
    assert done.status_code == 200, done.text

    assert client.delete(f"/api/v1/tasks/{task_id}").status_code == 204
    assert client.get(f"/api/v1/tasks/{task_id}").status_code == 404
    assert client.get(f"/api/v1/executions/{work['id']}").status_code == 404


def test_an_unfinished_task_is_not_deleted(client: TestClient) -> None:
    task_id = _task(client)
    refused = client.delete(f"/api/v1/tasks/{task_id}")
    assert refused.status_code == 409
    assert "pending" in refused.json()["message"]
    assert client.get(f"/api/v1/tasks/{task_id}").status_code == 200


def test_a_cancelled_task_still_stopping_on_an_agent_is_not_deleted(
    client: TestClient, enroll: AgentClient
) -> None:
    headers = enroll("a1")
    task_id = _task(client)
    claim(client, "a1", headers)
    assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
    refused = client.delete(f"/api/v1/tasks/{task_id}")
    assert refused.status_code == 409
    assert "stopping" in refused.json()["message"]


def test_deleting_an_absent_task_is_404(client: TestClient) -> None:
    assert client.delete("/api/v1/tasks/999999").status_code == 404
