"""Where executions run: ``all``, ``anyone`` and ``specific`` with three real agents."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import AgentFactory, Trio
from tests.e2e.harness import ApiClient, stays

pytestmark = pytest.mark.e2e


def test_all_runs_once_on_each_agent(api: ApiClient, trio: Trio) -> None:
    task = api.create_task("e2eplug.echo", "hi", ownership="all", labels=trio.labels)
    done = api.wait_task(task["id"])
    assert done["status"] == "succeeded"
    (run,) = done["runs"]
    assert sorted(e["agent"] for e in run["executions"]) == sorted(trio.names)
    assert {e["status"] for e in run["executions"]} == {"succeeded"}
    assert run["counts"] == {"succeeded": 3}


def test_all_with_no_matching_agent_does_not_run(api: ApiClient, trio: Trio) -> None:
    task = api.create_task("e2eplug.echo", ownership="all", labels={"group": "nobody-here"})
    done = api.wait_task(task["id"], timeout=15)
    assert done["status"] == "failed"
    (run,) = done["runs"]
    assert run["status"] == "skipped"
    assert run["executions"] == []


def test_anyone_runs_exactly_once(api: ApiClient, trio: Trio) -> None:
    task = api.create_task("e2eplug.echo", 1, ownership="anyone", labels=trio.labels)
    done = api.wait_task(task["id"])
    assert done["status"] == "succeeded"
    executions = api.executions(task["id"])
    assert len(executions) == 1
    assert executions[0]["agent"] in trio.names


def test_specific_runs_on_the_named_agent(api: ApiClient, trio: Trio) -> None:
    target = trio.names[1]
    task = api.create_task("e2eplug.echo", ownership="specific", target=target)
    done = api.wait_task(task["id"])
    assert done["status"] == "succeeded"
    assert [e["agent"] for e in api.executions(task["id"])] == [target]


def test_specific_without_target_is_refused(api: ApiClient) -> None:
    response = api.http.post(
        "/api/v1/tasks", json={"plugin": "e2eplug", "action": "echo", "ownership": "specific"}
    )
    assert response.status_code == 422
    assert "target" in response.text


def test_specific_waits_while_its_agent_is_stopped(api: ApiClient, agents: AgentFactory) -> None:
    (agent,) = agents.start(1)
    assert agent.stop() == 0
    api.wait_agent(agent.name, "offline", timeout=15)

    task = api.create_task("e2eplug.echo", "late", ownership="specific", target=agent.name)
    assert stays(lambda: api.get_task(task["id"])["status"] in ("pending", "scheduled"), 2.0)
    assert api.executions(task["id"]) == [] or all(
        e["status"] == "queued" for e in api.executions(task["id"])
    )

    agent.start()
    done = api.wait_task(task["id"])
    assert done["status"] == "succeeded"
    assert [e["agent"] for e in api.executions(task["id"])] == [agent.name]
