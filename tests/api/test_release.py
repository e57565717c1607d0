"""POST /api/v1/agents/{name}/release: executions claimed ahead handed back, fenced one by one."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import AgentClient
from tests.api.test_batched_reports import HELLO, status_of
from tests.api.test_tasks import claim


def release(client: TestClient, name: str, headers: dict[str, str], body: Any) -> Any:
    return client.post(f"/api/v1/agents/{name}/release", json=body, headers=headers)


def test_released_executions_are_queued_for_another_agent(
    client: TestClient, enroll: AgentClient
) -> None:
    first = enroll("a1", concurrency=4)
    tasks = client.post("/api/v1/tasks/bulk", json={"tasks": [HELLO, HELLO]}).json()["tasks"]
    held = sorted(w["id"] for w in claim(client, "a1", first, slots=2)["executions"])
    response = release(client, "a1", first, {"executions": [held[1]]})
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [
        {"id": held[1], "status": "queued", "refused": None, "reason": None}
    ]
    execution = client.get(f"/api/v1/executions/{held[1]}").json()
    assert (execution["status"], execution["agent"], execution["attempt"]) == ("queued", None, 1)
    assert sorted(status_of(client, task["id"]) for task in tasks) == ["pending", "running"]
    second = enroll("a2")
    (again,) = claim(client, "a2", second)["executions"]
    assert (again["id"], again["attempt"]) == (held[1], 1)


def test_a_release_of_what_the_agent_does_not_hold_is_refused_alone(
    client: TestClient, enroll: AgentClient
) -> None:
    owner = enroll("a1")
    other = enroll("a2")
    client.post("/api/v1/tasks", json={**HELLO, "ownership": "specific", "target": "a1"})
    (work,) = claim(client, "a1", owner)["executions"]
    response = release(client, "a2", other, {"executions": [work["id"], 999_999]})
    assert response.status_code == 200, response.text
    fenced, unknown = response.json()["results"]
    assert (fenced["refused"], unknown["refused"]) == ("fenced", "not_found")
    assert "not running on a2" in fenced["reason"]
    assert client.get(f"/api/v1/executions/{work['id']}").json()["status"] == "running"
    assert release(client, "a1", other, {"executions": [work["id"]]}).status_code == 403


def test_a_release_of_the_wrong_size_or_shape_is_refused(
    client: TestClient, enroll: AgentClient
) -> None:
    headers = enroll("a1")
    client.post("/api/v1/tasks", json=HELLO)
    (work,) = claim(client, "a1", headers)["executions"]
    for body, field in (
        ({"executions": []}, "executions"),
        ({"executions": list(range(1, 1002))}, "executions"),
        ({"executions": [work["id"], work["id"]]}, "executions"),
        ({"executions": [0]}, "executions.0"),
        ({"executions": ["x"]}, "executions.0"),
        ({"executions": [work["id"]], "extra": 1}, "extra"),
        ({}, "executions"),
    ):
        response = release(client, "a1", headers, body)
        assert response.status_code == 422, response.text
        assert response.json()["details"][0]["field"] == field
    anonymous = client.post(
        "/api/v1/agents/a1/release", json={"executions": [work["id"]]}, headers={}
    )
    assert anonymous.status_code == 401
    assert client.get(f"/api/v1/executions/{work['id']}").json()["status"] == "running"
