"""Every route needs a token (but /healthz), and an agent's token is good only for itself."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN_TOKEN, JOIN_TOKEN, AgentClient

OPEN_ROUTES = {("GET", "/healthz")}
DOCS_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def concrete(path: str) -> str:
    """Fill path parameters with values that pass validation."""
    return re.sub(r"\{[^}]+\}", lambda m: "1" if m.group(0).endswith("id}") else "a1", path)


def test_every_route_in_the_openapi_document_refuses_a_missing_token(anonymous: TestClient) -> None:
    spec = anonymous.get("/openapi.json").json()
    checked = 0
    for path, methods in spec["paths"].items():
        for method in methods:
            if (method.upper(), path) in OPEN_ROUTES:
                continue
            response = anonymous.request(method.upper(), concrete(path), json={})
            assert response.status_code == 401, f"{method.upper()} {path}: {response.status_code}"
            assert response.json()["error"] == "unauthorized"
            checked += 1
    assert checked >= 15
    assert anonymous.get("/healthz").json()["status"] == "ok"


def test_a_wrong_admin_token_is_refused(anonymous: TestClient) -> None:
    response = anonymous.get("/api/v1/tasks", headers={"Authorization": "Bearer not-the-token"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("token", [JOIN_TOKEN, "agent"])
def test_join_and_agent_tokens_cannot_call_admin_routes(
    client: TestClient, enroll: AgentClient, token: str
) -> None:
    headers = enroll("a1") if token == "agent" else {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/tasks", headers=headers).status_code == 401
    assert client.post("/api/v1/tasks/1/cancel", headers=headers).status_code == 401


def test_the_admin_token_cannot_enroll(client: TestClient) -> None:
    response = client.post("/api/v1/agents/enroll", json={"name": "x1"})
    assert response.status_code == 401


def test_agent_a_cannot_act_as_agent_b(client: TestClient, enroll: AgentClient) -> None:
    a, _ = enroll("a1"), enroll("b1")
    beat = client.post("/api/v1/agents/b1/heartbeat", json={}, headers=a)
    assert beat.status_code == 403 and "belongs to agent a1" in beat.json()["message"]
    claim = client.post("/api/v1/agents/b1/claim", json={"slots": 1, "wait_seconds": 0}, headers=a)
    assert claim.status_code == 403


def test_a_report_for_another_agents_execution_is_fenced(
    client: TestClient, enroll: AgentClient
) -> None:
    a, b = enroll("a1"), enroll("b1")
    client.post(
        "/api/v1/tasks",
        json={"plugin": "example", "action": "hello", "ownership": "specific", "target": "b1"},
    )
    work = client.post(
        "/api/v1/agents/b1/claim", json={"slots": 1, "wait_seconds": 0}, headers=b
    ).json()["executions"][0]
    forged = client.post(
        f"/api/v1/executions/{work['id']}/report", json={"status": "succeeded"}, headers=a
    )
    assert forged.status_code == 409
    assert client.get(f"/api/v1/executions/{work['id']}").json()["status"] == "running"


def test_a_revoked_token_stops_working_at_once(client: TestClient, enroll: AgentClient) -> None:
    headers = enroll("a1")
    # The first heartbeat makes the server remember the token; revoking must forget it.
    assert client.post("/api/v1/agents/a1/heartbeat", json={}, headers=headers).status_code == 200
    assert client.post("/api/v1/agents/a1/revoke").status_code == 200
    assert client.post("/api/v1/agents/a1/heartbeat", json={}, headers=headers).status_code == 401


def test_enrolling_a_taken_name_is_a_conflict(client: TestClient, enroll: AgentClient) -> None:
    enroll("a1")
    again = client.post(
        "/api/v1/agents/enroll",
        json={"name": "a1"},
        headers={"Authorization": f"Bearer {JOIN_TOKEN}"},
    )
    assert again.status_code == 409


def test_agents_download_plugins_with_their_hash(client: TestClient, enroll: AgentClient) -> None:
    headers = enroll("a1")
    source = client.get("/api/v1/plugins/example/source", headers=headers)
    assert source.status_code == 200
    listed = client.get("/api/v1/plugins/example").json()
    assert source.headers["x-octopus-sha256"] == listed["sha256"]
    missing = client.get("/api/v1/plugins/nope/source", headers=headers)
    assert missing.status_code == 404
    escape = client.get("/api/v1/plugins/..%2Fsecrets/source", headers=headers)
    assert escape.status_code in (404, 422)
    assert ADMIN_TOKEN not in source.text
