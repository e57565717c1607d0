"""Join token rotation and expiry, the enrollment rate limit, and the token kept out of logs
and later answers."""

from __future__ import annotations

import logging
import stat
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from octopus.config import ServerSettings
from octopus.server.app import create_app
from octopus.server.clock import utcnow
from octopus.server.secrets import JOIN_TOKEN_FILE, ensure_tokens
from octopus.server.state import ServerState
from tests.api.conftest import JOIN_TOKEN, AgentClient
from tests.unit.waiting import wait_for

ROTATE = "/api/v1/join-token/rotate"


def _enroll(client: TestClient, name: str, token: str) -> Any:
    return client.post(
        "/api/v1/agents/enroll",
        json={"name": name, "labels": {}},
        headers={"Authorization": f"Bearer {token}"},
    )


def _rotate(client: TestClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post(ROTATE, json=body) if body is not None else client.post(ROTATE)
    assert response.status_code == 201, response.text
    rotated: dict[str, Any] = response.json()
    return rotated


def test_rotation_retires_the_old_token_at_once_and_the_new_one_enrolls(
    client: TestClient, enroll: AgentClient
) -> None:
    enrolled = enroll("old-1")
    rotated = _rotate(client)
    assert rotated["expires_at"] is None and rotated["join_token"] != JOIN_TOKEN
    old = _enroll(client, "a1", JOIN_TOKEN)
    assert old.status_code == 401 and old.json()["message"] == "invalid join token"
    assert _enroll(client, "a1", rotated["join_token"]).status_code == 201
    beat = client.post("/api/v1/agents/old-1/heartbeat", json={}, headers=enrolled)
    assert beat.status_code == 200  # agents already enrolled keep their own tokens


def test_a_second_rotation_retires_the_first(client: TestClient) -> None:
    first, second = _rotate(client), _rotate(client)
    assert _enroll(client, "a1", first["join_token"]).status_code == 401
    assert _enroll(client, "a1", second["join_token"]).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_in_seconds": 0}, "expires_in_seconds"),
        ({"expires_in_seconds": -5}, "expires_in_seconds"),
        ({"expires_in_seconds": "soon"}, "expires_in_seconds"),
        ({"expires_in_seconds": 10**12}, "expires_in_seconds"),
        ({"expiry": 60}, "expiry"),
    ],
)
def test_a_bad_rotation_is_refused_naming_the_field_and_changes_nothing(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post(ROTATE, json=body)
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]
    assert _enroll(client, "a1", JOIN_TOKEN).status_code == 201
    assert client.get("/api/v1/audit").json()["total"] == 1  # the enrollment only


def test_rotation_needs_the_admin_token(anonymous: TestClient) -> None:
    assert anonymous.post(ROTATE).status_code == 401
    join = {"Authorization": f"Bearer {JOIN_TOKEN}"}
    assert anonymous.post(ROTATE, headers=join).status_code == 401
    assert _enroll(anonymous, "a1", JOIN_TOKEN).status_code == 201


def test_an_expired_join_token_is_refused_saying_so(client: TestClient) -> None:
    rotated = _rotate(client, {"expires_in_seconds": 1})
    expires_at = datetime.fromisoformat(rotated["expires_at"])
    assert _enroll(client, "early", rotated["join_token"]).status_code == 201
    wait_for(lambda: utcnow() > expires_at, timeout=3, message="the join token to expire")
    late = _enroll(client, "late", rotated["join_token"])
    assert late.status_code == 401
    assert "expired" in late.json()["message"]
    assert client.get("/api/v1/join-token").json()["expired"] is True


def test_the_new_token_is_in_the_data_dir_and_never_in_logs_or_later_answers(
    client: TestClient, settings: ServerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        token = _rotate(client, {"expires_in_seconds": 3600})["join_token"]
        assert _enroll(client, "a1", token).status_code == 201
    assert token not in caplog.text
    assert "rotated" in caplog.text
    saved = settings.data_dir / JOIN_TOKEN_FILE
    assert saved.read_text().strip() == token
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    for path in ("/api/v1/audit", "/api/v1/agents", "/api/v1/agents/a1", "/openapi.json"):
        answer = client.get(path)
        assert answer.status_code == 200 and token not in answer.text, path
    [rotation] = client.get("/api/v1/audit", params={"action": "join_token.rotated"}).json()[
        "items"
    ]
    assert (rotation["actor"], rotation["subject"]) == ("admin", "join_token")


def test_a_restart_does_not_revive_a_rotated_token(
    client: TestClient, settings: ServerSettings, state: ServerState
) -> None:
    token = _rotate(client)["join_token"]
    # A restart with the same configuration: OCTOPUS_JOIN_TOKEN is the retired token.
    again = ensure_tokens(
        settings.data_dir, settings.admin_token, JOIN_TOKEN, store=state.store, now=utcnow()
    )
    assert again.join == token
    assert _enroll(client, "a1", JOIN_TOKEN).status_code == 401
    assert _enroll(client, "a1", token).status_code == 201


def test_a_new_configured_token_replaces_a_rotated_one(
    client: TestClient, settings: ServerSettings, state: ServerState
) -> None:
    rotated = _rotate(client)["join_token"]
    chosen = "operator-chose-this-join-token-42"
    again = ensure_tokens(
        settings.data_dir, settings.admin_token, chosen, store=state.store, now=utcnow()
    )
    assert again.join == chosen
    assert _enroll(client, "a1", rotated).status_code == 401
    assert _enroll(client, "a1", chosen).status_code == 201


def test_failed_enrollments_are_rate_limited_per_address(client: TestClient) -> None:
    for attempt in range(5):
        assert _enroll(client, f"x{attempt}", "wrong-join-token-0123456789").status_code == 401
    limited = _enroll(client, "a1", JOIN_TOKEN)
    assert limited.status_code == 429
    assert limited.json()["error"] == "too_many_requests"
    assert int(limited.headers["retry-after"]) >= 1


def test_successful_enrollments_are_not_rate_limited(client: TestClient) -> None:
    for attempt in range(8):
        assert _enroll(client, f"a{attempt}", JOIN_TOKEN).status_code == 201


def test_the_join_token_in_force_shows_its_expiry_but_never_itself(client: TestClient) -> None:
    before = client.get("/api/v1/join-token")
    assert before.status_code == 200
    assert (before.json()["expires_at"], before.json()["expired"]) == (None, False)
    token = _rotate(client, {"expires_in_seconds": 600})["join_token"]
    shown = client.get("/api/v1/join-token")
    assert shown.json()["expires_at"] is not None and shown.json()["expired"] is False
    assert token not in shown.text and JOIN_TOKEN not in shown.text


def test_the_join_token_in_force_needs_the_admin_token(anonymous: TestClient) -> None:
    assert anonymous.get("/api/v1/join-token").status_code == 401
    join = {"Authorization": f"Bearer {JOIN_TOKEN}"}
    assert anonymous.get("/api/v1/join-token", headers=join).status_code == 401


def test_behind_a_trusted_proxy_the_limit_counts_the_forwarded_address(
    settings: ServerSettings, state: ServerState
) -> None:
    # The loopback proxy is trusted by default (uvicorn's FORWARDED_ALLOW_IPS).
    app = create_app(settings, state)
    with TestClient(app, client=("127.0.0.1", 40000)) as proxy:
        for attempt in range(5):
            failed = _enroll_from(
                proxy, f"x{attempt}", "wrong-join-token-0123456789", "203.0.113.9"
            )
            assert failed.status_code == 401
        assert _enroll_from(proxy, "a1", JOIN_TOKEN, "203.0.113.9").status_code == 429
        assert _enroll_from(proxy, "a2", JOIN_TOKEN, "198.51.100.7").status_code == 201


def _enroll_from(client: TestClient, name: str, token: str, forwarded_for: str) -> Any:
    return client.post(
        "/api/v1/agents/enroll",
        json={"name": name, "labels": {}},
        headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": forwarded_for},
    )
