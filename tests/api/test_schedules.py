"""Scheduled, interval and cron tasks over the API: create, show, edit, pause, resume, run now;
each happy path beside its unhappy twin (4xx naming the field, nothing stored or changed)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import AgentClient

ECHO = {"plugin": "example", "action": "echo", "args": [1]}


def later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/v1/tasks", json={**ECHO, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def refused(client: TestClient, status: int, field: str, method: str, path: str, **kw: Any) -> None:
    response = client.request(method, path, **kw)
    assert response.status_code == status, response.text
    body = response.json()
    named = [d["field"] for d in body["details"]] + [body["message"]]
    assert any(field in str(name) for name in named), body


def count_tasks(client: TestClient) -> int:
    total: int = client.get("/api/v1/tasks").json()["total"]
    return total


def test_every_type_is_accepted_and_shows_next_run_at(client: TestClient) -> None:
    scheduled = create(client, type="scheduled", run_at=later(3600))
    interval = create(client, type="interval", interval_seconds=3600, start_at=later(60))
    cron = create(client, type="cron", cron="0 9 * * 1-5", timezone="America/New_York")
    assert scheduled["status"] == "scheduled" and scheduled["next_run_at"] is not None
    assert interval["status"] == "active" and interval["next_run_at"] is not None
    assert cron["status"] == "active" and cron["next_run_at"] is not None
    assert cron["overlap_policy"] == "skip" and cron["missed_policy"] == "run_once"


def test_show_lists_the_next_five_fire_times_in_the_task_zone(client: TestClient) -> None:
    task = create(client, type="cron", cron="30 2 * * *", timezone="Asia/Kolkata")
    detail = client.get(f"/api/v1/tasks/{task['id']}").json()
    upcoming = [datetime.fromisoformat(moment) for moment in detail["upcoming"]]
    assert len(upcoming) == 5
    assert all(moment.utcoffset() == timedelta(hours=5, minutes=30) for moment in upcoming)
    assert all((m.hour, m.minute) == (2, 30) for m in upcoming)
    assert upcoming == sorted(upcoming)


def test_a_six_field_cron_with_seconds_is_accepted(client: TestClient) -> None:
    assert create(client, type="cron", cron="*/30 * * * * *")["cron"] == "*/30 * * * * *"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"type": "cron", "cron": "61 * * * *"}, "cron"),
        ({"type": "cron", "cron": "every day"}, "cron"),
        ({"type": "cron", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"type": "scheduled", "run_at": "2030-01-01T09:00:00"}, "run_at"),
        ({"type": "interval", "interval_seconds": 0}, "interval_seconds"),
        ({"type": "interval", "interval_seconds": -5}, "interval_seconds"),
        (
            {
                "type": "interval",
                "interval_seconds": 60,
                "start_at": "2030-01-02T00:00:00+00:00",
                "end_at": "2030-01-01T00:00:00+00:00",
            },
            "end_at",
        ),
        ({"type": "interval", "interval_seconds": 60, "end_at": "2001-01-01T00:00:00Z"}, "end_at"),
        (
            {
                "type": "scheduled",
                "run_at": "2030-01-01T09:00:00Z",
                "end_at": "2031-01-01T00:00:00Z",
            },
            "end_at",
        ),
        ({"type": "interval", "interval_seconds": 60, "max_runs": 0}, "max_runs"),
        ({"type": "interval", "interval_seconds": 60, "jitter_seconds": -1}, "jitter_seconds"),
        ({"type": "interval", "interval_seconds": 60, "jitter_seconds": 60}, "jitter_seconds"),
        (
            {"type": "interval", "interval_seconds": 60, "overlap_policy": "sometimes"},
            "overlap_policy",
        ),
        ({"type": "interval", "interval_seconds": 60, "missed_policy": "forget"}, "missed_policy"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(
    client: TestClient, fields: dict[str, Any], field: str
) -> None:
    refused(client, 422, field, "POST", "/api/v1/tasks", json={**ECHO, **fields})
    assert count_tasks(client) == 0


def test_patch_edits_the_schedule_at_once(client: TestClient) -> None:
    task = create(client, type="interval", interval_seconds=3600, start_at=later(3600))
    response = client.patch(
        f"/api/v1/tasks/{task['id']}",
        json={"start_at": later(120), "max_runs": 3, "overlap_policy": "allow"},
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["max_runs"] == 3 and edited["overlap_policy"] == "allow"
    assert edited["next_run_at"] < task["next_run_at"]


def test_patch_refuses_bad_values_and_unknown_fields(client: TestClient) -> None:
    task = create(client, type="cron", cron="0 9 * * *")
    path = f"/api/v1/tasks/{task['id']}"
    refused(client, 422, "cron", "PATCH", path, json={"cron": "99 * * * *"})
    refused(client, 422, "timezone", "PATCH", path, json={"timezone": "Nowhere/Atall"})
    refused(client, 422, "type", "PATCH", path, json={"type": "adhoc"})
    refused(client, 422, "interval_seconds", "PATCH", path, json={"interval_seconds": 5})
    assert client.get(path).json()["cron"] == "0 9 * * *"


def test_patch_of_a_cancelled_task_is_a_conflict(client: TestClient) -> None:
    task = create(client, type="interval", interval_seconds=3600, start_at=later(3600))
    path = f"/api/v1/tasks/{task['id']}"
    assert client.post(f"{path}/cancel").status_code == 200
    refused(client, 409, "cancelled", "PATCH", path, json={"interval_seconds": 10})
    assert client.get(path).json()["interval_seconds"] == 3600


def test_pause_and_resume(client: TestClient) -> None:
    task = create(client, type="interval", interval_seconds=3600, start_at=later(3600))
    path = f"/api/v1/tasks/{task['id']}"
    assert client.post(f"{path}/pause").json()["status"] == "paused"
    refused(client, 409, "paused", "POST", f"{path}/pause")
    assert client.post(f"{path}/resume").json()["status"] == "active"
    refused(client, 409, "active", "POST", f"{path}/resume")


def test_pause_of_a_one_shot_task_is_a_conflict(client: TestClient) -> None:
    task = create(client, type="scheduled", run_at=later(3600))
    path = f"/api/v1/tasks/{task['id']}"
    refused(client, 409, "scheduled", "POST", f"{path}/pause")
    assert client.get(path).json()["status"] == "scheduled"
    refused(client, 404, "not found", "POST", "/api/v1/tasks/999999/pause")


def test_run_now_fires_one_run(client: TestClient, enroll: AgentClient) -> None:
    enroll("a1")
    task = create(client, type="interval", interval_seconds=3600, start_at=later(3600))
    response = client.post(f"/api/v1/tasks/{task['id']}/run")
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["reason"] == "run now" and len(run["executions"]) == 1
    detail = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert [r["id"] for r in detail["runs"]] == [run["id"]]
    assert detail["run_count"] == 0


def test_run_now_of_an_adhoc_task_is_a_conflict(client: TestClient, enroll: AgentClient) -> None:
    enroll("a1")
    task = create(client)
    refused(client, 409, "run now", "POST", f"/api/v1/tasks/{task['id']}/run")
    assert len(client.get(f"/api/v1/tasks/{task['id']}").json()["runs"]) == 1


def test_an_interval_task_fires_through_the_running_scheduler(
    client: TestClient, enroll: AgentClient
) -> None:
    enroll("a1")
    task = create(client, type="interval", interval_seconds=0.2, overlap_policy="allow")
    path = f"/api/v1/tasks/{task['id']}"
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while len(client.get(path).json()["runs"]) < 3:
        assert datetime.now(UTC) < deadline, "the scheduler did not fire three runs"
        client.get("/healthz")
    runs = client.get(path).json()["runs"]
    times = sorted(datetime.fromisoformat(r["fire_time"]) for r in runs)
    steps = {round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(times)}
    assert steps == {0.2}


def test_runs_page_through_the_whole_history_filtered_by_status(
    client: TestClient, enroll: AgentClient
) -> None:
    enroll("a1")
    task = create(client, type="interval", interval_seconds=3600, start_at=later(3600))
    path = f"/api/v1/tasks/{task['id']}"
    fired = [client.post(f"{path}/run").json()["id"] for _ in range(25)]
    assert len(client.get(path).json()["runs"]) == 20  # the detail shows the latest only
    first = client.get(f"{path}/runs", params={"limit": 10}).json()
    rest = client.get(f"{path}/runs", params={"limit": 100, "offset": 10}).json()
    assert first["total"] == 25 and len(first["items"]) == 10 and len(rest["items"]) == 15
    assert sorted(r["id"] for r in first["items"] + rest["items"]) == sorted(fired)
    assert all(len(r["executions"]) == 1 for r in first["items"])
    pending = client.get(f"{path}/runs", params={"status": "Pending"}).json()
    assert pending["total"] == 25
    assert client.get(f"{path}/runs", params={"status": "missed"}).json()["total"] == 0


def test_runs_page_refuses_bad_filters_and_unknown_tasks(client: TestClient) -> None:
    task = create(client, type="interval", interval_seconds=3600, start_at=later(3600))
    path = f"/api/v1/tasks/{task['id']}/runs"
    refused(client, 422, "status", "GET", path, params={"status": "finished-ish"})
    refused(client, 422, "limit", "GET", path, params={"limit": 0})
    refused(client, 422, "offset", "GET", path, params={"offset": -1})
    refused(client, 404, "not found", "GET", "/api/v1/tasks/999999/runs")
