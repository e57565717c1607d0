"""The fast lane answers well-formed heartbeats, claims and report batches of known agents, and
the admin's single creates, itself, exactly as the routes would, and passes everything else,
body intact, to the app, whose routes give the refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from octopus.core.enums import ExecutionStatus, Ownership
from octopus.core.models import Execution
from octopus.schemas.agents import ClaimedExecution, ClaimResponse
from octopus.server import fast_lane
from octopus.server.fast_lane import FastLane
from octopus.server.metrics import Metrics
from octopus.server.routes.agent_protocol import claim_answer
from octopus.server.state import ServerState
from octopus.store import open_store
from octopus.store.base import Claimed
from tests.api.conftest import ADMIN_TOKEN, JOIN_TOKEN

BEAT = {"facts": {"hostname": "lane-host", "concurrency": 2, "free_slots": 2}, "labels": {}}
CLAIM = {"slots": 1, "wait_seconds": 0}
HELLO = {"plugin": "example", "action": "hello"}


class Downstream:
    """Stands for the app behind the lane (the full app is tested through it elsewhere): it
    records what reaches it and answers 299."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def agent(client: TestClient) -> dict[str, str]:
    """Agent a1, enrolled; its first heartbeat went through the route, which remembered it."""
    enrolled = client.post(
        "/api/v1/agents/enroll",
        json={"name": "a1", "labels": {}},
        headers={"Authorization": f"Bearer {JOIN_TOKEN}"},
    )
    assert enrolled.status_code == 201, enrolled.text
    return {"Authorization": f"Bearer {enrolled.json()['token']}"}


@pytest.fixture
def downstream() -> Downstream:
    return Downstream()


@pytest.fixture
def metrics(state: ServerState) -> Metrics:
    return Metrics(state.store)


@pytest.fixture
def lane(state: ServerState, downstream: Downstream, metrics: Metrics) -> TestClient:
    return TestClient(FastLane(downstream, state=state, metrics=metrics, max_body_bytes=4096))


def _beat(client: TestClient, headers: dict[str, str], body: Any = BEAT, **kw: Any) -> Any:
    return client.post("/api/v1/agents/a1/heartbeat", json=body, headers=headers, **kw)


def _claim(client: TestClient, headers: dict[str, str], body: Any = CLAIM, **kw: Any) -> Any:
    return client.post("/api/v1/agents/a1/claim", json=body, headers=headers, **kw)


def _report(client: TestClient, headers: dict[str, str], body: Any, **kw: Any) -> Any:
    return client.post("/api/v1/agents/a1/reports", json=body, headers=headers, **kw)


def _succeeded(execution_id: int) -> dict[str, Any]:
    return {"reports": [{"execution_id": execution_id, "status": "succeeded", "result": 7}]}


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def _observed(metrics: Metrics, route: str, status: str = "200") -> float:
    value = metrics.registry.get_sample_value(
        "octopus_http_request_duration_seconds_count",
        {"route": route, "method": "POST", "status": status},
    )
    return value or 0.0


def test_the_lane_answers_as_the_route_does_and_stores_the_facts(
    client: TestClient,
    lane: TestClient,
    agent: dict[str, str],
    downstream: Downstream,
    state: ServerState,
) -> None:
    by_route = _beat(client, agent, {**BEAT, "facts": {"hostname": "first"}})
    assert by_route.status_code == 200

    by_lane = _beat(lane, agent)

    assert downstream.bodies == []
    assert by_lane.status_code == 200
    assert by_lane.headers["content-type"] == "application/json"
    assert by_lane.json() == by_route.json()
    assert by_lane.json()["status"] == "online"
    assert state.store.get_agent("a1").facts.hostname == "lane-host"


def test_the_full_app_answers_through_its_lane(
    client: TestClient, agent: dict[str, str], state: ServerState
) -> None:
    assert _beat(client, agent).status_code == 200  # the route; the token is remembered now
    answer = _beat(client, agent, {**BEAT, "draining": True})
    assert answer.status_code == 200
    assert answer.json()["status"] == "draining"
    assert state.store.get_agent("a1").status.value == "draining"


@pytest.mark.parametrize(
    ("case", "send"),
    [
        ("invalid body", lambda c, h: _beat(c, h, {"facts": {"running": ["x"]}})),
        ("unknown field", lambda c, h: _beat(c, h, {"mood": "good"})),
        (
            "another agent's path",
            lambda c, h: c.post("/api/v1/agents/a2/heartbeat", json=BEAT, headers=h),
        ),
        ("unknown token", lambda c, h: _beat(c, {"Authorization": "Bearer nope"})),
        ("no token", lambda c, h: _beat(c, {})),
        ("a query string", lambda c, h: _beat(c, h, params={"x": "1"})),
        ("not JSON", lambda c, h: c.post("/api/v1/agents/a1/heartbeat", content=b"x", headers=h)),
        ("over the size limit", lambda c, h: _beat(c, h, {"labels": {"k": "v" * 5000}})),
        ("another method", lambda c, h: c.put("/api/v1/agents/a1/heartbeat", json=BEAT, headers=h)),
        ("claim: invalid body", lambda c, h: _claim(c, h, {"slots": -1})),
        ("claim: unknown field", lambda c, h: _claim(c, h, {**CLAIM, "mood": "good"})),
        (
            "claim: another agent's path",
            lambda c, h: c.post("/api/v1/agents/a2/claim", json=CLAIM, headers=h),
        ),
        ("claim: unknown token", lambda c, h: _claim(c, {"Authorization": "Bearer nope"})),
        ("claim: a query string", lambda c, h: _claim(c, h, params={"x": "1"})),
        ("reports: empty", lambda c, h: _report(c, h, {"reports": []})),
        ("reports: invalid status", lambda c, h: _report(c, h, {"reports": [{"status": "ok"}]})),
        ("reports: no token", lambda c, h: _report(c, {}, _succeeded(1))),
        (
            "reports: a result beyond 64 bits",
            lambda c, h: _report(
                c, h, {"reports": [{**_succeeded(1)["reports"][0], "result": 2**64}]}
            ),
        ),
        (
            "reports: a result nested too deep",
            lambda c, h: _report(
                c, h, {"reports": [{**_succeeded(1)["reports"][0], "result": _deep(80)}]}
            ),
        ),
    ],
)
def test_everything_else_reaches_the_app_with_its_body(
    client: TestClient,
    lane: TestClient,
    agent: dict[str, str],
    downstream: Downstream,
    case: str,
    send: Any,
) -> None:
    assert _beat(client, agent).status_code == 200
    answer = send(lane, agent)
    assert answer.status_code == 299, case
    assert len(downstream.bodies) == 1


def test_a_refused_body_reaches_the_app_whole(
    lane: TestClient, agent: dict[str, str], client: TestClient, downstream: Downstream
) -> None:
    assert _beat(client, agent).status_code == 200
    body = {"facts": {"pid": -1}}
    assert _beat(lane, agent, body).status_code == 299
    assert json.loads(downstream.bodies[0]) == body


def test_the_route_refuses_what_the_lane_passed_on(
    client: TestClient, agent: dict[str, str]
) -> None:
    assert _beat(client, agent).status_code == 200
    answer = _beat(client, agent, {"facts": {"pid": -1}})
    assert answer.status_code == 422
    assert "pid" in answer.text
    assert _beat(client, {"Authorization": "Bearer nope"}).status_code == 401
    other = client.post("/api/v1/agents/a2/heartbeat", json=BEAT, headers=agent)
    assert other.status_code == 403


def test_a_revoked_agent_is_no_longer_answered_by_the_lane(
    client: TestClient, lane: TestClient, agent: dict[str, str], downstream: Downstream
) -> None:
    assert _beat(client, agent).status_code == 200
    assert client.post("/api/v1/agents/a1/revoke").status_code == 200
    assert _beat(lane, agent).status_code == 299
    assert _beat(client, agent).status_code == 401


def test_an_agent_revoked_by_another_replica_goes_to_the_route(
    client: TestClient, lane: TestClient, agent: dict[str, str], database_url: str
) -> None:
    """This server still remembers the token; recording finds no agent and the route answers."""
    assert _beat(client, agent).status_code == 200
    replica = open_store(database_url)
    try:
        replica.revoke_agent("a1", now=datetime.now(UTC))
    finally:
        replica.close()
    assert _beat(lane, agent).status_code == 299
    refused = _beat(client, agent)
    assert refused.status_code == 404, refused.text


# Claims and report batches ---------------------------------------------------------------


def test_the_lane_claims_and_records_reports_as_the_routes_do(
    client: TestClient,
    lane: TestClient,
    agent: dict[str, str],
    downstream: Downstream,
    state: ServerState,
    metrics: Metrics,
) -> None:
    assert _beat(client, agent).status_code == 200
    created = client.post("/api/v1/tasks/bulk", json={"tasks": [HELLO, HELLO]})
    assert created.status_code == 201, created.text
    by_route = _claim(client, agent)
    by_lane = _claim(lane, agent)
    assert (by_route.status_code, by_lane.status_code) == (200, 200)
    assert downstream.bodies == []
    [routed], [laned] = by_route.json()["executions"], by_lane.json()["executions"]
    assert laned.keys() == routed.keys()
    assert laned["id"] != routed["id"]
    assert state.store.get_execution(laned["id"]).agent == "a1"

    recorded = _report(lane, agent, _succeeded(laned["id"]))
    assert recorded.status_code == 200
    assert recorded.json() == {
        "results": [{"id": laned["id"], "status": "succeeded", "refused": None, "reason": None}]
    }
    assert state.store.get_execution(laned["id"]).result == 7
    again = _report(lane, agent, _succeeded(laned["id"]))  # answered by the lane, as fenced
    assert again.json()["results"][0]["refused"] == "fenced"
    assert downstream.bodies == []
    assert _observed(metrics, "/api/v1/agents/{name}/claim") == 1
    assert _observed(metrics, "/api/v1/agents/{name}/reports") == 2


@pytest.mark.parametrize("microsecond", [0, 5])  # pydantic leaves out a zero fraction too
def test_a_claim_answer_is_the_json_its_model_makes(microsecond: int) -> None:
    lease = datetime(2026, 12, 6, 5, 30, 1, microsecond, tzinfo=UTC)
    execution = Execution(
        id=12,
        run_id=11,
        task_id=10,
        ownership=Ownership.ANYONE,
        agent="a1",
        attempt=2,
        retry_of=9,
        status=ExecutionStatus.RUNNING,
        not_before=datetime.now(UTC) + timedelta(hours=1),
        lease_expires_at=lease,
        plugin_sha256="b" * 64,
        result=None,
        error=None,
        queued_at=lease,
        started_at=None,
        finished_at=None,
    )
    claimed = Claimed(
        execution=execution,
        plugin="demo",
        action="echo",
        args=[1, 2.5, "\u00e9t\u00e9 \u0000", None, [True, {"k": []}]],
        kwargs={"nested": {"deep": [1]}, "big": 2**63 - 1},
        timeout_seconds=None,
        plugin_sha256="b" * 64,
    )
    answer = claim_answer([claimed, claimed], [3, 4])
    model = ClaimResponse.model_validate_json(answer)
    assert model.__pydantic_serializer__.to_json(model) == answer
    assert list(json.loads(answer)["executions"][0]) == list(ClaimedExecution.model_fields)
    assert 3599 < model.executions[0].start_in_seconds <= 3600
    assert model.executions[0].lease_expires_at == lease
    assert claim_answer([], []) == b'{"executions":[],"cancel":[]}'


def test_a_claim_with_nothing_to_do_is_answered_empty_by_the_lane(
    client: TestClient, lane: TestClient, agent: dict[str, str], downstream: Downstream
) -> None:
    assert _beat(client, agent).status_code == 200
    answer = _claim(lane, agent)
    assert answer.status_code == 200
    assert answer.json() == {"executions": [], "cancel": []}
    assert downstream.bodies == []


def test_the_routes_refuse_what_the_lane_passed_on(
    client: TestClient, agent: dict[str, str]
) -> None:
    assert _beat(client, agent).status_code == 200
    refused = _claim(client, agent, {"slots": -1})
    assert refused.status_code == 422
    assert "slots" in refused.text
    empty = _report(client, agent, {"reports": []})
    assert empty.status_code == 422
    assert "reports" in empty.text
    report = {"execution_id": 1, "status": "succeeded"}
    for result in (2**64, _deep(80)):
        unsafe = _report(client, agent, {"reports": [{**report, "result": result}]})
        assert unsafe.status_code == 400, unsafe.text
        assert unsafe.json()["error"] == "invalid_json"


# Single creates -----------------------------------------------------------------------------

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLOCK_FIELDS = ("id", "created_at", "updated_at", "next_run_at")


def _create(client: TestClient, body: Any = HELLO, headers: Any = ADMIN, **kw: Any) -> Any:
    return client.post("/api/v1/tasks", json=body, headers=headers, **kw)


def _tasks(state: ServerState) -> int:
    return state.store.list_tasks(limit=1, offset=0)[1]


@pytest.mark.parametrize(
    "body",
    [
        HELLO,
        {"plugin": "example", "action": "echo", "args": ["é"], "name": "n", "max_retries": 2},
        {**HELLO, "type": "scheduled", "run_at": "2099-01-01T00:00:00+02:00"},
        {**HELLO, "type": "cron", "cron": "*/5 * * * *", "timezone": "Europe/Paris"},
    ],
)
def test_the_lane_creates_as_the_route_does(
    client: TestClient,
    lane: TestClient,
    downstream: Downstream,
    state: ServerState,
    metrics: Metrics,
    body: dict[str, Any],
) -> None:
    by_route = _create(client, body, {**ADMIN, "Idempotency-Key": "through-the-route"})
    by_lane = _create(lane, body)

    assert downstream.bodies == []
    assert (by_route.status_code, by_lane.status_code) == (201, 201), by_lane.text
    assert by_lane.headers["content-type"] == "application/json"
    routed, laned = by_route.json(), by_lane.json()
    assert {k: v for k, v in laned.items() if k not in CLOCK_FIELDS} == {
        k: v for k, v in routed.items() if k not in CLOCK_FIELDS
    }
    assert state.store.get_task(laned["id"]).spec.name == routed["name"]
    assert _observed(metrics, "/api/v1/tasks", "201") == 1
    entries = client.get("/api/v1/audit", params={"action": "task.created"}).json()["items"]
    assert {entry["subject"] for entry in entries} == {
        f"task:{routed['id']}",
        f"task:{laned['id']}",
    }


@pytest.mark.parametrize(
    ("case", "send"),
    [
        ("an idempotency key", lambda c: _create(c, headers={**ADMIN, "Idempotency-Key": "k"})),
        ("another token", lambda c: _create(c, headers={"Authorization": "Bearer nope"})),
        ("no token", lambda c: _create(c, headers={})),
        ("a query string", lambda c: _create(c, params={"x": "1"})),
        ("unknown field", lambda c: _create(c, {**HELLO, "colour": "red"})),
        ("invalid body", lambda c: _create(c, {**HELLO, "max_retries": -1})),
        ("unknown plugin", lambda c: _create(c, {"plugin": "nosuch", "action": "hello"})),
        ("wrong arguments", lambda c: _create(c, {**HELLO, "args": [1, 2, 3]})),
        ("unknown target", lambda c: _create(c, {**HELLO, "ownership": "specific", "target": "x"})),
        ("args beyond 64 bits", lambda c: _create(c, {**HELLO, "args": [2**64]})),
        ("over the size limit", lambda c: _create(c, {**HELLO, "name": "n" * 5000})),
        ("not JSON", lambda c: c.post("/api/v1/tasks", content=b"x", headers=ADMIN)),
        ("the bulk path", lambda c: c.post("/api/v1/tasks/bulk", json=[HELLO], headers=ADMIN)),
    ],
)
def test_every_other_create_reaches_the_app_and_nothing_is_stored(
    lane: TestClient, downstream: Downstream, state: ServerState, case: str, send: Any
) -> None:
    answer = send(lane)
    assert answer.status_code == 299, case
    assert len(downstream.bodies) == 1
    assert _tasks(state) == 0


def test_the_app_refuses_what_the_lane_passed_on(client: TestClient, state: ServerState) -> None:
    assert _create(client, {"plugin": "nosuch", "action": "hello"}).status_code == 422
    assert _create(client, {**HELLO, "args": [2**64]}).status_code == 400
    assert _create(client, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert _tasks(state) == 0


def test_a_create_that_fails_after_storing_is_not_replayed(
    lane: TestClient,
    downstream: Downstream,
    state: ServerState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("answering failed")

    monkeypatch.setattr(fast_lane, "created_answer", broken)
    with pytest.raises(fast_lane.Stored):
        _create(lane)
    assert downstream.bodies == []
    assert _tasks(state) == 1
