"""Bad input gets a 4xx that names the problem, the server stays up, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import JOIN_TOKEN, AgentClient

GOOD = {"plugin": "example", "action": "hello"}


def with_(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != field}


# (name, body, expected status, field the error must name)
TASK_CASES: list[tuple[str, Any, int, str]] = [
    ("bad type", with_(type="sometimes"), 422, "type"),
    ("type of wrong kind", with_(type=3), 422, "type"),
    ("bad ownership", with_(ownership="everyone"), 422, "ownership"),
    ("specific without target", with_(ownership="specific"), 422, "target"),
    ("target without specific", with_(target="a1"), 422, "target"),
    ("unknown target agent", with_(ownership="specific", target="ghost"), 422, "target"),
    ("unknown plugin", with_(plugin="nope"), 422, "plugin"),
    ("unknown action", with_(action="nope"), 422, "action"),
    ("private action", with_(action="_private"), 422, "action"),
    ("plugin name escaping", with_(plugin="../etc/passwd"), 422, "plugin"),
    ("missing plugin", without("plugin"), 422, "plugin"),
    ("missing action", without("action"), 422, "action"),
    ("unknown field", with_(colour="red"), 422, "colour"),
    ("args not a list", with_(args={"a": 1}), 422, "args"),
    ("kwargs not an object", with_(kwargs=[1]), 422, "kwargs"),
    ("too many args", with_(args=[1, 2, 3]), 422, "args"),
    ("unknown kwarg", with_(kwargs={"nope": 1}), 422, "args"),
    ("negative timeout", with_(timeout_seconds=-1), 422, "timeout_seconds"),
    ("zero timeout", with_(timeout_seconds=0), 422, "timeout_seconds"),
    ("timeout as text", with_(timeout_seconds="soon"), 422, "timeout_seconds"),
    ("negative retries", with_(max_retries=-1), 422, "max_retries"),
    ("huge retries", with_(max_retries=10**6), 422, "max_retries"),
    ("retries as float", with_(max_retries=1.5), 422, "max_retries"),
    ("NUL in name", with_(name="a\u0000b"), 422, "name"),
    ("labels not strings", with_(labels={"a": 1}), 422, "labels.a"),
    ("label key with spaces", with_(labels={"a b": "c"}), 422, "labels"),
    ("naive run_at", with_(type="scheduled", run_at="2030-01-01T00:00:00"), 422, "run_at"),
    ("bad timestamp", with_(type="scheduled", run_at="yesterday"), 422, "run_at"),
    ("unknown zone", with_(timezone="Mars/Olympus"), 422, "timezone"),
    # 64 characters, 256 bytes: too long for the file name ZoneInfo looks up (was a 500)
    ("zone too long for a path", with_(timezone="\U0001f600" * 64), 422, "timezone"),
    ("interval without seconds", with_(type="interval"), 422, "interval_seconds"),
    ("non-positive interval", with_(type="interval", interval_seconds=0), 422, "interval_seconds"),
    ("body is a list", [GOOD], 422, "body"),
    ("body is a string", "hello", 422, "body"),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "field"), TASK_CASES, ids=[c[0] for c in TASK_CASES]
)
def test_bad_task_is_refused_naming_the_field(
    client: TestClient, name: str, body: Any, status: int, field: str
) -> None:
    response = client.post("/api/v1/tasks", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    fields = [d["field"] for d in error["details"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), (fields, error)
    assert client.get("/api/v1/tasks").json()["total"] == 0


RAW_CASES: list[tuple[str, bytes, str, int, str]] = [
    ("malformed JSON", b'{"plugin": "example",', "application/json", 400, "malformed JSON"),
    (
        "NaN",
        b'{"plugin": "example", "action": "hello", "args": [NaN]}',
        "application/json",
        400,
        "NaN",
    ),
    (
        "Infinity",
        b'{"plugin":"example","action":"hello","args":[-Infinity]}',
        "application/json",
        400,
        "Infinity",
    ),
    (
        "5000-digit integer",
        b'{"plugin":"example","action":"hello","args":[' + b"9" * 5000 + b"]}",
        "application/json",
        400,
        "64-bit",
    ),
    (
        "integer beyond 64 bits",
        b'{"plugin":"example","action":"hello","args":[18446744073709551616]}',
        "application/json",
        400,
        "64-bit",
    ),
    (
        "integer just past 64 bits",
        b'{"plugin":"example","action":"hello","args":[9223372036854775808]}',
        "application/json",
        400,
        "64-bit",
    ),
    (
        "negative integer past 64 bits",
        b'{"plugin":"example","action":"hello","args":[-9223372036854775809]}',
        "application/json",
        400,
        "64-bit",
    ),
    (
        "float overflow",
        b'{"plugin":"example","action":"hello","args":[1e400]}',
        "application/json",
        400,
        "out of range",
    ),
    (
        "deep nesting",
        b'{"plugin":"example","action":"hello","args":' + b"[" * 5000 + b"]" * 5000 + b"}",
        "application/json",
        400,
        "nested deeper",
    ),
    (
        "nesting past the limit, well within the parser's",
        b'{"plugin":"example","action":"echo","args":' + b"[" * 100 + b"]" * 100 + b"}",
        "application/json",
        400,
        "nested deeper than 64",
    ),
    ("wrong content type", json.dumps(GOOD).encode(), "text/plain", 415, "application/json"),
    (
        "form body",
        b"plugin=example&action=hello",
        "application/x-www-form-urlencoded",
        415,
        "application/json",
    ),
    ("invalid UTF-8", b'{"plugin": "\xff\xfe"}', "application/json", 400, "malformed JSON"),
]


@pytest.mark.parametrize(
    ("name", "raw", "content_type", "status", "message"), RAW_CASES, ids=[c[0] for c in RAW_CASES]
)
def test_hazardous_bodies_are_refused_before_routing(
    client: TestClient, name: str, raw: bytes, content_type: str, status: int, message: str
) -> None:
    response = client.post("/api/v1/tasks", content=raw, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert client.get("/api/v1/tasks").json()["total"] == 0
    assert client.get("/healthz").status_code == 200


def test_oversized_body_is_413(client: TestClient) -> None:
    body = with_(args=["x" * 70_000])
    response = client.post("/api/v1/tasks", json=body)
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert client.get("/api/v1/tasks").json()["total"] == 0


def test_the_64_bit_edges_and_long_digit_strings_are_accepted(client: TestClient) -> None:
    # The twin of the refusals above: a run of digits alone is not a reason to refuse.
    raw = (
        b'{"plugin":"example","action":"echo","args":[9223372036854775807,'
        b'-9223372036854775808,"12345678901234567890123"]}'
    )
    response = client.post(
        "/api/v1/tasks", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["args"] == [2**63 - 1, -(2**63), "12345678901234567890123"]


def test_nesting_up_to_the_limit_is_accepted(client: TestClient) -> None:
    nested: list[Any] = []
    for _ in range(62):  # with the body and its args list: 64 levels
        nested = [nested]
    response = client.post("/api/v1/tasks", json={**GOOD, "action": "echo", "args": nested})
    assert response.status_code == 201, response.text
    assert response.json()["args"] == nested


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/tasks/0", 422),
        ("/api/v1/tasks/-1", 422),
        ("/api/v1/tasks/abc", 422),
        ("/api/v1/tasks/9223372036854775808", 422),
        ("/api/v1/tasks/" + "9" * 5000, 422),
        ("/api/v1/tasks/9223372036854775807", 404),
        ("/api/v1/executions/99999/log", 404),
        ("/api/v1/tasks?limit=0", 422),
        ("/api/v1/tasks?limit=100000", 422),
        ("/api/v1/tasks?offset=-5", 422),
        ("/api/v1/tasks?status=sideways", 422),
        ("/api/v1/tasks?type=sometimes", 422),
        ("/api/v1/tasks?plugin=a%00b", 400),
        ("/api/v1/tasks?plugin=../etc", 422),
        ("/api/v1/tasks/1/runs?status=pending%00", 400),
        ("/api/v1/agents/bad%20name", 422),
        ("/api/v1/agents/ghost", 404),
    ],
)
def test_bad_ids_and_queries_are_4xx(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.json()["message"]


def test_duplicate_idempotency_key_with_another_body_changes_nothing(client: TestClient) -> None:
    key = {"Idempotency-Key": "k1"}
    assert client.post("/api/v1/tasks", json=GOOD, headers=key).status_code == 201
    clash = client.post("/api/v1/tasks", json=with_(name="other"), headers=key)
    assert clash.status_code == 409
    tasks = client.get("/api/v1/tasks").json()
    assert tasks["total"] == 1 and tasks["items"][0]["name"] == "example.hello"


def test_bad_idempotency_key_is_refused(client: TestClient) -> None:
    response = client.post("/api/v1/tasks", json=GOOD, headers={"Idempotency-Key": "a b"})
    assert response.status_code == 422
    assert client.get("/api/v1/tasks").json()["total"] == 0


AGENT_CASES: list[tuple[str, str, Any, int]] = [
    ("claim without slots", "claim", {}, 422),
    ("claim negative slots", "claim", {"slots": -1}, 422),
    ("claim endless wait", "claim", {"slots": 1, "wait_seconds": 3600}, 422),
    ("claim negative lead", "claim", {"slots": 1, "lead_seconds": -0.1}, 422),
    ("claim lead beyond a second", "claim", {"slots": 1, "lead_seconds": 5}, 422),
    ("heartbeat unknown field", "heartbeat", {"mood": "good"}, 422),
    ("heartbeat running not ids", "heartbeat", {"facts": {"running": ["x"]}}, 422),
    ("heartbeat huge id", "heartbeat", {"facts": {"running": [2**64]}}, 400),
    ("heartbeat NUL hostname", "heartbeat", {"facts": {"hostname": "a\u0000"}}, 422),
]


@pytest.mark.parametrize(
    ("name", "route", "body", "status"), AGENT_CASES, ids=[c[0] for c in AGENT_CASES]
)
def test_bad_agent_messages_are_refused(
    client: TestClient, enroll: AgentClient, name: str, route: str, body: Any, status: int
) -> None:
    headers = enroll("a1")
    response = client.post(f"/api/v1/agents/a1/{route}", json=body, headers=headers)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "done-ish"}, "status"),
        ({"status": "queued"}, "status"),
        ({"status": "succeeded", "log": "x" * 300_000}, "log"),
        ({"status": "failed", "error": {"type": "E"}}, "error.message"),
        ({"status": "succeeded", "extra": 1}, "extra"),
    ],
)
def test_bad_reports_are_refused_and_the_execution_stays_running(
    client: TestClient, enroll: AgentClient, body: dict[str, Any], field: str
) -> None:
    headers = enroll("a1")
    client.post("/api/v1/tasks", json=GOOD)
    work = client.post(
        "/api/v1/agents/a1/claim", json={"slots": 1, "wait_seconds": 0}, headers=headers
    ).json()["executions"][0]
    response = client.post(f"/api/v1/executions/{work['id']}/report", json=body, headers=headers)
    assert response.status_code in (413, 422), response.text
    if response.status_code == 422:
        assert any(d["field"].startswith(field) for d in response.json()["details"])
    assert client.get(f"/api/v1/executions/{work['id']}").json()["status"] == "running"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "-leading"}, "name"),
        ({"name": "x" * 200}, "name"),
        ({}, "name"),
        ({"name": "ok", "labels": {"k": 5}}, "labels.k"),
    ],
)
def test_bad_enrollment_is_refused(client: TestClient, body: dict[str, Any], field: str) -> None:
    response = client.post(
        "/api/v1/agents/enroll", json=body, headers={"Authorization": f"Bearer {JOIN_TOKEN}"}
    )
    assert response.status_code == 422, response.text
    assert any(d["field"].startswith(field) for d in response.json()["details"])
    assert client.get("/api/v1/agents").json()["total"] == 0
