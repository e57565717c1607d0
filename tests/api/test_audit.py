"""The audit log through the API: each audited change leaves one entry, filters are checked,
and nothing secret is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN_TOKEN, JOIN_TOKEN, AgentClient

INTERVAL = {"plugin": "example", "action": "hello", "type": "interval", "interval_seconds": 3600}


def _entries(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _actions(client: TestClient, **params: Any) -> list[str]:
    return [entry["action"] for entry in _entries(client, **params)]


def test_task_changes_are_audited_newest_first(client: TestClient) -> None:
    created = client.post("/api/v1/tasks", json={**INTERVAL, "kwargs": {"name": "s3cret"}})
    task_id = created.json()["id"]
    steps = [
        ("PATCH", f"/api/v1/tasks/{task_id}", {"interval_seconds": 60}),
        ("POST", f"/api/v1/tasks/{task_id}/pause", None),
        ("POST", f"/api/v1/tasks/{task_id}/resume", None),
        ("POST", f"/api/v1/tasks/{task_id}/run", None),
        ("POST", f"/api/v1/tasks/{task_id}/cancel", None),
    ]
    for method, path, body in steps:
        assert client.request(method, path, json=body).status_code < 300, path
    entries = _entries(client, subject=f"task:{task_id}")
    assert [e["action"] for e in entries] == [
        "task.cancelled",
        "task.run_now",
        "task.resumed",
        "task.paused",
        "task.edited",
        "task.created",
    ]
    assert {e["actor"] for e in entries} == {"admin"}
    assert entries[4]["detail"] == {"fields": ["interval_seconds"]}
    assert entries[5]["detail"]["plugin"] == "example"
    assert "s3cret" not in str(entries)  # arguments may carry secrets: never recorded


def test_a_refused_change_leaves_no_entry(client: TestClient) -> None:
    created = client.post("/api/v1/tasks", json=INTERVAL).json()
    assert client.post(f"/api/v1/tasks/{created['id']}/resume").status_code == 409
    assert client.delete(f"/api/v1/tasks/{created['id']}").status_code == 409
    assert _actions(client) == ["task.created"]


def test_a_deleted_task_is_audited(client: TestClient) -> None:
    task = client.post("/api/v1/tasks", json={**INTERVAL}).json()
    client.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert client.delete(f"/api/v1/tasks/{task['id']}").status_code == 204
    assert _actions(client, action="task.deleted") == ["task.deleted"]


def test_agent_lifecycle_is_audited_with_its_actor(client: TestClient, enroll: AgentClient) -> None:
    enroll("web-1", role="web")
    for verb in ("drain", "resume", "revoke"):
        assert client.post(f"/api/v1/agents/web-1/{verb}").status_code == 200
    entries = _entries(client, subject="agent:web-1")
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("admin", "agent.revoked"),
        ("admin", "agent.resumed"),
        ("admin", "agent.drained"),
        ("agent:web-1", "agent.enrolled"),
    ]
    assert entries[3]["detail"] == {"labels": {"role": "web"}}
    assert _actions(client, actor="agent:web-1") == ["agent.enrolled"]


def test_filters_combine_and_pages_count(client: TestClient) -> None:
    for _ in range(3):
        client.post("/api/v1/tasks", json=INTERVAL)
    page = client.get("/api/v1/audit", params={"limit": 2, "offset": 1}).json()
    assert (page["total"], len(page["items"]), page["limit"], page["offset"]) == (3, 2, 2, 1)
    assert _entries(client, action="task.created", actor="dashboard") == []
    assert len(_entries(client, since="2000-01-01T00:00:00+00:00")) == 3
    assert _entries(client, since="2999-01-01T00:00:00Z") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"action": "task.exploded"}, "action"),
        ({"actor": "root"}, "actor"),
        ({"actor": "agent:"}, "actor"),
        ({"subject": "task:abc"}, "subject"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T00:00:00"}, "since"),  # naive: no offset
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
def test_bad_filters_are_refused_naming_the_field(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    response = client.get("/api/v1/audit", params=params)
    assert response.status_code == 422, response.text
    assert any(field in (d["field"] or "") for d in response.json()["details"])


def test_the_audit_log_needs_the_admin_token(anonymous: TestClient, enroll: AgentClient) -> None:
    assert anonymous.get("/api/v1/audit").status_code == 401
    agent = enroll("a1")
    assert anonymous.get("/api/v1/audit", headers=agent).status_code == 401
    join = {"Authorization": f"Bearer {JOIN_TOKEN}"}
    assert anonymous.get("/api/v1/audit", headers=join).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    entries = anonymous.get("/api/v1/audit", headers=admin).json()["items"]
    assert ADMIN_TOKEN not in str(entries) and JOIN_TOKEN not in str(entries)


@pytest.mark.parametrize("prefer", [None, "return=minimal"])
def test_each_task_of_a_bulk_create_is_audited_once(client: TestClient, prefer: str | None) -> None:
    body = {"tasks": [{"plugin": "example", "action": "hello"}] * 3}
    headers = {"Idempotency-Key": "bulk-1", **({"Prefer": prefer} if prefer else {})}
    first = client.post("/api/v1/tasks/bulk", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/tasks/bulk", json=body, headers=headers)
    assert again.status_code == 201
    answer = first.json()
    ids = answer["ids"] if prefer else [task["id"] for task in answer["tasks"]]
    entries = _entries(client, action="task.created")
    assert sorted(e["subject"] for e in entries) == sorted(f"task:{i}" for i in ids)
    assert {e["detail"]["name"] for e in entries} == {"example.hello"}


def test_a_refused_bulk_create_leaves_no_entry(client: TestClient) -> None:
    body = {"tasks": [{"plugin": "example", "action": "hello"}, {"plugin": "nope", "action": "x"}]}
    assert client.post("/api/v1/tasks/bulk", json=body).status_code == 422
    assert _entries(client) == []
