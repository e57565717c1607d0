"""Creating, listing, showing and cancelling tasks through the API, with each ownership."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import AgentClient


def claim(client: TestClient, name: str, headers: dict[str, str], slots: int = 4) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/agents/{name}/claim", json={"slots": slots, "wait_seconds": 0}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def report(client: TestClient, execution_id: int, headers: dict[str, str], **body: Any) -> Any:
    return client.post(f"/api/v1/executions/{execution_id}/report", json=body, headers=headers)


def test_anyone_task_runs_once_and_succeeds(client: TestClient, enroll: AgentClient) -> None:
    headers = enroll("a1")
    created = client.post(
        "/api/v1/tasks",
        json={"plugin": "example", "action": "echo", "args": [1, True, None], "kwargs": {"k": "é"}},
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["status"] == "pending" and task["name"] == "example.echo"

    work = claim(client, "a1", headers)["executions"]
    assert [w["task_id"] for w in work] == [task["id"]]
    assert work[0]["args"] == [1, True, None] and work[0]["kwargs"] == {"k": "é"}
    assert len(work[0]["plugin_sha256"]) == 64
    assert client.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "running"

    ack = report(client, work[0]["id"], headers, status="succeeded", result={"ok": [1, None]})
    assert ack.status_code == 200, ack.text
    detail = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert detail["status"] == "succeeded"
    (run,) = detail["runs"]
    assert run["status"] == "succeeded" and run["summary"] == "1/1 succeeded"
    (execution,) = run["executions"]
    assert execution["agent"] == "a1" and execution["attempt"] == 1
    assert execution["result"] == {"ok": [1, None]}


def test_all_task_runs_on_every_matching_agent(client: TestClient, enroll: AgentClient) -> None:
    agents = {name: enroll(name, role="web") for name in ("w1", "w2")}
    db = enroll("db1", role="db")
    task = client.post(
        "/api/v1/tasks",
        json={
            "plugin": "example",
            "action": "hello",
            "ownership": "ALL",
            "labels": {"role": "web"},
        },
    ).json()
    for name, headers in agents.items():
        (work,) = claim(client, name, headers)["executions"]
        assert (
            report(client, work["id"], headers, status="succeeded", result=name).status_code == 200
        )
    assert claim(client, "db1", db)["executions"] == []
    detail = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert detail["status"] == "succeeded"
    assert sorted(e["agent"] for e in detail["runs"][0]["executions"]) == ["w1", "w2"]


def test_all_task_with_no_eligible_agent_is_skipped_not_silent(client: TestClient) -> None:
    task = client.post(
        "/api/v1/tasks", json={"plugin": "example", "action": "hello", "ownership": "all"}
    ).json()
    detail = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert detail["status"] == "failed"
    assert detail["runs"][0]["status"] == "skipped"
    assert "no eligible agent" in detail["runs"][0]["reason"]


def test_specific_task_goes_only_to_its_target(client: TestClient, enroll: AgentClient) -> None:
    one, two = enroll("s1"), enroll("s2")
    task = client.post(
        "/api/v1/tasks",
        json={"plugin": "example", "action": "hello", "ownership": "specific", "target": "s2"},
    ).json()
    assert claim(client, "s1", one)["executions"] == []
    (work,) = claim(client, "s2", two)["executions"]
    assert work["task_id"] == task["id"]


def test_failed_report_with_retries_queues_attempt_two(
    client: TestClient, enroll: AgentClient
) -> None:
    headers = enroll("r1")
    task = client.post(
        "/api/v1/tasks",
        json={
            "plugin": "example",
            "action": "fail",
            "args": ["boom"],
            "max_retries": 1,
            "retry_backoff_seconds": 0,
        },
    ).json()
    (first,) = claim(client, "r1", headers)["executions"]
    error = {"type": "RuntimeError", "message": "boom", "traceback": "Traceback..."}
    assert report(client, first["id"], headers, status="failed", error=error).status_code == 200
    (second,) = claim(client, "r1", headers)["executions"]
    assert second["attempt"] == 2
    report(client, second["id"], headers, status="failed", error=error)
    detail = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert detail["status"] == "failed"
    attempts = sorted((e["attempt"], e["status"]) for e in detail["runs"][0]["executions"])
    assert attempts == [(1, "failed"), (2, "failed")]
    assert detail["runs"][0]["executions"][0]["error"]["type"] == "RuntimeError"


def test_a_second_report_is_fenced_and_changes_nothing(
    client: TestClient, enroll: AgentClient
) -> None:
    headers = enroll("f1")
    client.post("/api/v1/tasks", json={"plugin": "example", "action": "hello"})
    (work,) = claim(client, "f1", headers)["executions"]
    assert report(client, work["id"], headers, status="succeeded", result=1).status_code == 200
    again = report(client, work["id"], headers, status="failed")
    assert again.status_code == 409 and again.json()["error"] == "fenced"
    assert client.get(f"/api/v1/executions/{work['id']}").json()["status"] == "succeeded"


def test_log_is_kept_and_served(client: TestClient, enroll: AgentClient) -> None:
    headers = enroll("l1")
    client.post("/api/v1/tasks", json={"plugin": "example", "action": "hello"})
    (work,) = claim(client, "l1", headers)["executions"]
    report(client, work["id"], headers, status="succeeded", log="line one\nline two\n")
    log = client.get(f"/api/v1/executions/{work['id']}/log").json()
    assert log == {"execution_id": work["id"], "log": "line one\nline two\n", "truncated": False}


def test_cancel_stops_queued_and_running_work(client: TestClient, enroll: AgentClient) -> None:
    headers = enroll("c1", concurrency=1)
    running = client.post("/api/v1/tasks", json={"plugin": "example", "action": "hello"}).json()
    (work,) = claim(client, "c1", headers, slots=1)["executions"]
    queued = client.post("/api/v1/tasks", json={"plugin": "example", "action": "hello"}).json()

    assert client.post(f"/api/v1/tasks/{queued['id']}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/api/v1/tasks/{running['id']}/cancel").json()["status"] == "cancelled"
    assert claim(client, "c1", headers, slots=0)["cancel"] == [work["id"]]
    assert report(client, work["id"], headers, status="cancelled").status_code == 200
    assert client.get(f"/api/v1/executions/{work['id']}").json()["status"] == "cancelled"
    again = client.post(f"/api/v1/tasks/{queued['id']}/cancel")
    assert again.status_code == 409


def test_idempotency_key_returns_the_same_task_or_409(client: TestClient) -> None:
    body = {"plugin": "example", "action": "hello"}
    key = {"Idempotency-Key": "create-42"}
    first = client.post("/api/v1/tasks", json=body, headers=key)
    second = client.post("/api/v1/tasks", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    other = client.post("/api/v1/tasks", json={**body, "kwargs": {"name": "x"}}, headers=key)
    assert other.status_code == 409
    assert client.get("/api/v1/tasks").json()["total"] == 1


def test_list_filters_and_paginates_newest_first(client: TestClient) -> None:
    ids = [
        client.post("/api/v1/tasks", json={"plugin": "example", "action": "hello"}).json()["id"]
        for _ in range(5)
    ]
    page = client.get("/api/v1/tasks", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and [t["id"] for t in page["items"]] == ids[::-1][1:3]
    assert client.get("/api/v1/tasks", params={"status": "succeeded"}).json()["total"] == 0
    assert client.get("/api/v1/tasks", params={"status": "Created"}).json()["total"] == 5
    assert client.get("/api/v1/tasks", params={"plugin": "nope"}).json()["total"] == 0
    executions = client.get(f"/api/v1/tasks/{ids[0]}/executions").json()
    assert executions["total"] == 1


def test_plugins_are_listed_with_their_actions(client: TestClient) -> None:
    plugins = {p["name"]: p for p in client.get("/api/v1/plugins").json()}
    assert {"example", "system", "shell", "http"} <= set(plugins)
    hello = next(a for a in plugins["example"]["actions"] if a["name"] == "hello")
    assert hello["params"][0]["name"] == "name" and hello["params"][0]["required"] is False
    assert client.get("/api/v1/plugins/example").json()["sha256"] == plugins["example"]["sha256"]
    assert client.get("/api/v1/plugins/nope").status_code == 404


def test_live_output_is_served_while_running_and_fenced_after(
    client: TestClient, enroll: AgentClient
) -> None:
    headers = enroll("o1")
    client.post("/api/v1/tasks", json={"plugin": "example", "action": "hello"})
    (work,) = claim(client, "o1", headers)["executions"]
    url = f"/api/v1/executions/{work['id']}/output"
    assert client.post(url, json={"text": "half way\n"}, headers=headers).status_code == 204
    assert client.get(f"/api/v1/executions/{work['id']}/log").json()["log"] == "half way\n"
    assert client.post(url, json={"text": ""}, headers=headers).status_code == 422
    assert client.post(url, json={"text": "x"}).status_code == 401
    report(client, work["id"], headers, status="succeeded", log="all of it\n")
    assert client.post(url, json={"text": "late\n"}, headers=headers).status_code == 409
    assert client.get(f"/api/v1/executions/{work['id']}/log").json()["log"] == "all of it\n"


@pytest.mark.parametrize("lead", [0.0, 1.0])
def test_a_scheduled_run_reaches_an_agent_to_start_on_its_time_never_before(
    client: TestClient, enroll: AgentClient, lead: float
) -> None:
    # The server fires runs a little ahead; only an agent that waits for the start time
    # itself (lead_seconds) gets one early, told how long to wait.
    headers = enroll("l1")
    run_at = datetime.now(UTC) + timedelta(seconds=0.4)
    created = client.post(
        "/api/v1/tasks",
        json={"plugin": "example", "action": "hello", "type": "scheduled",
              "run_at": run_at.isoformat()},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    answer = client.post(
        "/api/v1/agents/l1/claim",
        json={"slots": 2, "wait_seconds": 5, "lead_seconds": lead},
        headers=headers,
    )
    received = datetime.now(UTC)
    assert answer.status_code == 200, answer.text
    [work] = answer.json()["executions"]
    start_in = work["start_in_seconds"]
    assert 0 <= start_in <= lead
    assert received + timedelta(seconds=start_in) >= run_at
    # Woken again at the fire time, not left to its next look 0.5 s later.
    assert received + timedelta(seconds=start_in) < run_at + timedelta(seconds=0.3)
