"""POST /api/v1/tasks/bulk: many tasks in one atomic request, each checked like a single create."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import AgentClient
from tests.api.test_tasks import claim, report

BULK = "/api/v1/tasks/bulk"
HELLO = {"plugin": "example", "action": "hello"}
CLOCK_FIELDS = ("id", "created_at", "updated_at", "next_run_at")
"""Fields that differ between two creates a moment apart."""


def stored_tasks(client: TestClient) -> int:
    total: int = client.get("/api/v1/tasks", params={"limit": 1}).json()["total"]
    return total


def fields(response: Any) -> list[str]:
    return [detail["field"] for detail in response.json()["details"]]


def comparable(task: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in task.items() if key not in CLOCK_FIELDS}


def test_bulk_tasks_are_stored_in_order_and_run(client: TestClient, enroll: AgentClient) -> None:
    headers = enroll("a1", role="web")
    items = [{"plugin": "example", "action": "echo", "args": [index]} for index in range(5)] + [
        {**HELLO, "ownership": "all", "labels": {"role": "web"}},
        {**HELLO, "ownership": "specific", "target": "a1"},
    ]
    response = client.post(BULK, json={"tasks": items})
    assert response.status_code == 201, response.text
    created = response.json()["tasks"]
    assert [task["args"] for task in created[:5]] == [[index] for index in range(5)]
    assert [task["ownership"] for task in created[5:]] == ["all", "specific"]
    ids = [task["id"] for task in created]
    assert ids == sorted(ids) and all(task["status"] == "pending" for task in created)

    work = claim(client, "a1", headers, slots=10)["executions"]
    assert sorted(w["task_id"] for w in work) == ids
    for execution in work:
        ack = report(client, execution["id"], headers, status="succeeded", result=None)
        assert ack.status_code == 200, ack.text
    for task_id in ids:
        assert client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "succeeded"


def test_a_bulk_task_is_the_same_as_a_single_create(
    client: TestClient, enroll: AgentClient
) -> None:
    enroll("a1")
    bodies = [
        {"plugin": "example", "action": "echo", "kwargs": {"k": "é"}, "name": "one"},
        {**HELLO, "ownership": "all", "labels": {"none": "matches"}},
        {**HELLO, "type": "interval", "interval_seconds": 60},
        {**HELLO, "type": "scheduled", "run_at": "2099-01-01T00:00:00+02:00"},
    ]
    singles = [client.post("/api/v1/tasks", json=body).json() for body in bodies]
    bulk = client.post(BULK, json={"tasks": bodies}).json()["tasks"]
    for single, batched in zip(singles, bulk, strict=True):
        assert comparable(batched) == comparable(single)
    assert bulk[2]["next_run_at"] == bulk[2]["created_at"]  # an interval task fires at once
    assert bulk[3]["next_run_at"] == singles[3]["next_run_at"] == "2098-12-31T22:00:00Z"
    assert bulk[1]["status"] == "failed"  # an all task with no eligible agent is skipped
    (run,) = client.get(f"/api/v1/tasks/{bulk[1]['id']}").json()["runs"]
    assert run["status"] == "skipped" and run["reason"] == "no eligible agent"


def test_bulk_anyone_tasks_spread_over_the_agents_like_single_creates(
    client: TestClient, enroll: AgentClient
) -> None:
    agents = {name: enroll(name) for name in ("a1", "a2")}
    response = client.post(BULK, json={"tasks": [HELLO] * 6})
    assert response.status_code == 201, response.text
    for name, headers in agents.items():
        assert len(claim(client, name, headers, slots=10)["executions"]) == 3


def test_a_bad_item_is_named_by_its_index_and_nothing_is_stored(client: TestClient) -> None:
    items = [HELLO, HELLO, HELLO, {"plugin": "nosuch", "action": "hello"}, HELLO]
    response = client.post(BULK, json={"tasks": items})
    assert response.status_code == 422, response.text
    assert fields(response) == ["tasks.3.plugin"]
    assert stored_tasks(client) == 0


def test_each_kind_of_bad_item_names_its_field(client: TestClient) -> None:
    cases = {
        "tasks.1.max_retries": {**HELLO, "max_retries": -1},
        "tasks.1.target": {**HELLO, "ownership": "specific"},
        "tasks.1.args": {**HELLO, "args": [1, 2, 3]},
        "tasks.1.action": {"plugin": "example", "action": "nosuch"},
        "tasks.1.colour": {**HELLO, "colour": "red"},
    }
    for field, item in cases.items():
        response = client.post(BULK, json={"tasks": [HELLO, item]})
        assert response.status_code == 422, (field, response.text)
        assert fields(response) == [field], response.text
    unknown = {**HELLO, "ownership": "specific", "target": "ghost"}
    response = client.post(BULK, json={"tasks": [HELLO, HELLO, unknown]})
    assert response.status_code == 422 and fields(response) == ["tasks.2.target"]
    assert stored_tasks(client) == 0


def test_a_thousand_tasks_are_accepted(client: TestClient) -> None:
    response = client.post(BULK, json={"tasks": [HELLO] * 1000})
    assert response.status_code == 201, response.text
    assert len(response.json()["tasks"]) == 1000
    assert stored_tasks(client) == 1000


def test_more_than_a_thousand_or_none_is_refused_naming_tasks(client: TestClient) -> None:
    for items in ([HELLO] * 1001, []):
        response = client.post(BULK, json={"tasks": items})
        assert response.status_code == 422, response.text
        assert fields(response) == ["tasks"]
    assert stored_tasks(client) == 0


def test_a_body_of_the_wrong_shape_is_refused(client: TestClient) -> None:
    cases: list[tuple[Any, str]] = [
        ({"tasks": HELLO}, "tasks"),
        ({"tasks": "many"}, "tasks"),
        ({"tasks": [HELLO, 7]}, "tasks.1"),
        ({"tasks": [HELLO], "extra": 1}, "extra"),
        ({}, "tasks"),
    ]
    for body, field in cases:
        response = client.post(BULK, json=body)
        assert response.status_code == 422, (body, response.text)
        assert fields(response)[0] == field, response.text
    assert client.post(BULK, json=[HELLO]).status_code == 422
    assert stored_tasks(client) == 0


def test_idempotency_key_returns_the_same_tasks_or_409(client: TestClient) -> None:
    body = {"tasks": [HELLO, {**HELLO, "args": ["you"]}]}
    first = client.post(BULK, json=body, headers={"Idempotency-Key": "batch-1"})
    again = client.post(BULK, json=body, headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 201, again.text
    assert [t["id"] for t in again.json()["tasks"]] == [t["id"] for t in first.json()["tasks"]]
    assert stored_tasks(client) == 2

    other = client.post(BULK, json={"tasks": [HELLO]}, headers={"Idempotency-Key": "batch-1"})
    assert other.status_code == 409, other.text
    assert stored_tasks(client) == 2


def test_a_bulk_key_and_a_single_key_do_not_collide(client: TestClient) -> None:
    single = client.post("/api/v1/tasks", json=HELLO, headers={"Idempotency-Key": "k"})
    bulk = client.post(BULK, json={"tasks": [HELLO]}, headers={"Idempotency-Key": "k"})
    assert single.status_code == bulk.status_code == 201
    assert bulk.json()["tasks"][0]["id"] != single.json()["id"]


def test_bulk_needs_the_admin_token(anonymous: TestClient) -> None:
    response = anonymous.post(BULK, json={"tasks": [HELLO]})
    assert response.status_code == 401, response.text


MINIMAL = {"Prefer": "return=minimal"}


def test_return_minimal_answers_with_the_ids_of_the_same_tasks(
    client: TestClient, enroll: AgentClient
) -> None:
    enroll("a1")
    items = [{"plugin": "example", "action": "echo", "args": [index]} for index in range(3)] + [
        {**HELLO, "type": "scheduled", "run_at": "2099-01-01T00:00:00Z"},
        {**HELLO, "ownership": "all", "labels": {"none": "matches"}},
    ]
    full = client.post(BULK, json={"tasks": items}).json()["tasks"]
    response = client.post(BULK, json={"tasks": items}, headers=MINIMAL)
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == "return=minimal"
    ids = response.json()["ids"]
    assert list(response.json()) == ["ids"] and ids == sorted(ids) and len(ids) == 5
    stored = [client.get(f"/api/v1/tasks/{task_id}").json() for task_id in ids]
    as_created = [{key: task[key] for key in full[0]} for task in stored]  # no runs, upcoming
    assert [comparable(task) for task in as_created] == [comparable(task) for task in full]
    assert [task["status"] for task in stored] == ["pending"] * 3 + ["scheduled", "failed"]


@pytest.mark.parametrize(
    "prefer",
    ["return=minimal", "RETURN=Minimal", 'return="minimal"', "respond-async, return=minimal; x=1"],
)
def test_return_minimal_is_recognised_as_rfc_7240_writes_it(
    client: TestClient, prefer: str
) -> None:
    response = client.post(BULK, json={"tasks": [HELLO]}, headers={"Prefer": prefer})
    assert response.status_code == 201, response.text
    assert "ids" in response.json() and "tasks" not in response.json()


@pytest.mark.parametrize("prefer", ["return=representation", "respond-async", "minimal", ""])
def test_other_preferences_get_the_tasks_in_full(client: TestClient, prefer: str) -> None:
    response = client.post(BULK, json={"tasks": [HELLO]}, headers={"Prefer": prefer})
    assert response.status_code == 201, response.text
    assert response.json()["tasks"][0]["action"] == "hello"
    assert "Preference-Applied" not in response.headers


def test_return_minimal_with_an_idempotency_key_returns_the_same_ids(client: TestClient) -> None:
    body = {"tasks": [HELLO, {**HELLO, "args": ["you"]}]}
    first = client.post(BULK, json=body, headers={**MINIMAL, "Idempotency-Key": "b"})
    again = client.post(BULK, json=body, headers={**MINIMAL, "Idempotency-Key": "b"})
    full = client.post(BULK, json=body, headers={"Idempotency-Key": "b"})
    assert first.status_code == again.status_code == full.status_code == 201, again.text
    assert first.json()["ids"] == again.json()["ids"] == [t["id"] for t in full.json()["tasks"]]
    assert stored_tasks(client) == 2


def test_return_minimal_refuses_a_bad_item_or_header_and_stores_nothing(
    client: TestClient,
) -> None:
    items = [HELLO, {"plugin": "nosuch", "action": "hello"}]
    response = client.post(BULK, json={"tasks": items}, headers=MINIMAL)
    assert response.status_code == 422, response.text
    assert fields(response) == ["tasks.1.plugin"]
    too_long = {"Prefer": "return=minimal, " + "x" * 200}
    response = client.post(BULK, json={"tasks": [HELLO]}, headers=too_long)
    assert response.status_code == 422, response.text
    assert fields(response) == ["header.Prefer"], response.text
    assert stored_tasks(client) == 0
