"""Tasks created in bulk run end to end on real agents, and a refused bulk stores nothing."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import AgentFactory
from tests.e2e.harness import ApiClient, wait_for

pytestmark = pytest.mark.e2e

COUNT = 60


def test_bulk_tasks_all_run_once_on_real_agents(api: ApiClient, agents: AgentFactory) -> None:
    agents.start(2)
    items = [
        {"plugin": "example", "action": "echo", "args": [index], "labels": agents.labels}
        for index in range(COUNT)
    ]
    created = api.ok("POST", "/api/v1/tasks/bulk", 201, json={"tasks": items})["tasks"]
    ids = [task["id"] for task in created]
    assert [task["args"] for task in created] == [[index] for index in range(COUNT)]

    def all_ended() -> bool:
        return all(api.get_task(task_id)["status"] == "succeeded" for task_id in ids)

    wait_for(all_ended, timeout=60, interval=0.5, message=f"{COUNT} bulk tasks to succeed")
    ran_on = set()
    for index, task_id in enumerate(ids):
        (execution,) = api.executions(task_id)
        assert execution["result"] == {"args": [index], "kwargs": {}}
        ran_on.add(execution["agent"])
    assert ran_on == {agent.name for agent in agents.started}


def test_a_refused_bulk_runs_nothing(api: ApiClient, agents: AgentFactory) -> None:
    (agent,) = agents.start(1)
    good = {"plugin": "example", "action": "echo", "labels": agents.labels}
    bad = {"plugin": "example", "action": "echo", "timeout_seconds": -1}
    before = api.ok("GET", "/api/v1/tasks", params={"limit": 1})["total"]
    response = api.http.post("/api/v1/tasks/bulk", json={"tasks": [good, good, bad]})
    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["field"] == "tasks.2.timeout_seconds"
    assert api.ok("GET", "/api/v1/tasks", params={"limit": 1})["total"] == before
    assert api.agent(agent.name)["running"] == []  # type: ignore[index]
