"""Claim-ahead on real agents: quick work is claimed beyond free workers, slow work is not,
an execution held waiting for a worker can be cancelled at once, and what an agent claimed
ahead while work looked quick is handed back once it turns slow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.e2e.agent_metrics import (
    BATCH_REPORT_ROUTE,
    CLAIM_ROUTE,
    RELEASE_ROUTE,
    SINGLE_REPORT_ROUTE,
    requests_to,
)
from tests.e2e.conftest import AgentFactory, ServerFactory
from tests.e2e.harness import ApiClient, wait_for

pytestmark = pytest.mark.e2e

COUNT = 120


def _bulk(api: ApiClient, items: list[dict[str, Any]]) -> list[int]:
    created = api.ok("POST", "/api/v1/tasks/bulk", 201, json={"tasks": items})["tasks"]
    return [task["id"] for task in created]


def _run_quick_tasks(api: ApiClient, agents: AgentFactory) -> None:
    items = [
        {"plugin": "e2eplug", "action": "echo", "args": [index], "labels": agents.labels}
        for index in range(COUNT)
    ]
    ids = _bulk(api, items)

    def all_succeeded() -> bool:
        page = api.ok("GET", "/api/v1/tasks", params={"status": "succeeded", "limit": 1})
        return bool(page["total"] == COUNT)

    wait_for(all_succeeded, timeout=60, interval=0.2, message=f"{COUNT} quick tasks")
    for index in (0, COUNT // 2, COUNT - 1):
        (execution,) = api.executions(ids[index])
        assert execution["result"] == {"args": [index], "kwargs": {}}


def test_quick_tasks_are_claimed_ahead_and_reported_in_batches(
    server_factory: ServerFactory, agents: AgentFactory
) -> None:
    server = server_factory.start()
    agents.make(server=server, concurrency=2).start()
    with server.api() as api:
        _run_quick_tasks(api, agents)
        claims = requests_to(api, CLAIM_ROUTE)
        batches = requests_to(api, BATCH_REPORT_ROUTE)
        singles = requests_to(api, SINGLE_REPORT_ROUTE)
    # Two workers claiming only for free workers need at least COUNT / 2 claims.
    assert 0 < claims < COUNT // 4, f"{claims} claims for {COUNT} tasks"
    assert singles == 0
    assert 0 < batches <= COUNT, (claims, batches, singles)


def test_prefetch_zero_claims_only_for_free_workers(
    server_factory: ServerFactory, agents: AgentFactory
) -> None:
    server = server_factory.start()
    agents.make(server=server, concurrency=2, extra_args=["--prefetch", "0"]).start()
    with server.api() as api:
        _run_quick_tasks(api, agents)
        claims = requests_to(api, CLAIM_ROUTE)
    assert claims >= COUNT // 2, f"{claims} claims for {COUNT} tasks"


def _interval(execution: dict[str, Any]) -> tuple[datetime, datetime]:
    return (
        datetime.fromisoformat(execution["started_at"]),
        datetime.fromisoformat(execution["finished_at"]),
    )


def test_slow_tasks_are_not_claimed_ahead(api: ApiClient, agents: AgentFactory) -> None:
    first, second = agents.start(2, concurrency=1)
    for agent in (first, second):  # each learns that its executions are slow
        warm = api.create_task(
            "e2eplug.sleep", 0.6, ownership="specific", target=agent.name, labels=agents.labels
        )
        api.wait_task(warm["id"])
    for agent in (first, second):
        api.ok("POST", f"/api/v1/agents/{agent.name}/drain")
    # Created while no agent of the group is online, the executions belong to no agent yet:
    # the first agent to claim could take both.
    ids = _bulk(api, [{"plugin": "e2eplug", "action": "sleep", "args": [2],
                       "labels": agents.labels}] * 2)  # fmt: skip
    api.ok("POST", f"/api/v1/agents/{first.name}/resume")
    wait_for(
        lambda: any(api.executions(task_id)[0]["status"] == "running" for task_id in ids),
        timeout=10,
        message="the first agent to start one",
    )
    api.ok("POST", f"/api/v1/agents/{second.name}/resume")
    executions = [api.wait_execution(task_id, ["succeeded"], timeout=20)[0] for task_id in ids]
    assert {execution["agent"] for execution in executions} == {first.name, second.name}
    (start_a, end_a), (start_b, end_b) = map(_interval, executions)
    assert start_a < end_b and start_b < end_a, "the two ran one after the other"


def test_a_claimed_ahead_execution_waiting_for_a_worker_is_cancelled_at_once(
    api: ApiClient, agents: AgentFactory
) -> None:
    (agent,) = agents.start(1, concurrency=1)
    warm = api.create_task("e2eplug.echo", labels=agents.labels)
    api.wait_task(warm["id"])  # a quick execution: claim-ahead is on
    running_id, waiting_id = _bulk(
        api, [{"plugin": "e2eplug", "action": "sleep", "args": [30], "labels": agents.labels}] * 2
    )
    api.wait_execution(running_id, ["running"], timeout=10)
    (held,) = api.wait_execution(waiting_id, ["running"], timeout=10)
    assert held["agent"] == agent.name
    api.cancel_task(waiting_id)
    (cancelled,) = api.wait_execution(waiting_id, ["cancelled"], timeout=3)
    assert cancelled["error"]["type"] == "Cancelled"
    assert api.executions(running_id)[0]["status"] == "running"
    api.cancel_task(running_id)
    api.wait_execution(running_id, ["cancelled"], timeout=10)


def test_work_claimed_ahead_is_handed_back_when_it_turns_slow(
    api: ApiClient, agents: AgentFactory
) -> None:
    first, second = agents.start(2, concurrency=1)
    warm = api.create_task("e2eplug.echo", ownership="specific", target=first.name,
                           labels=agents.labels)  # fmt: skip
    api.wait_task(warm["id"])  # the first agent has seen quick work: it claims ahead
    api.ok("POST", f"/api/v1/agents/{second.name}/drain")
    ids = _bulk(api, [{"plugin": "e2eplug", "action": "sleep", "args": [1],
                       "labels": agents.labels}] * 6)  # fmt: skip
    wait_for(
        lambda: all(api.executions(task_id)[0]["status"] == "running" for task_id in ids),
        timeout=10,
        message="the first agent to hold all six",
    )
    assert {api.executions(task_id)[0]["agent"] for task_id in ids} == {first.name}
    api.ok("POST", f"/api/v1/agents/{second.name}/resume")
    executions = [api.wait_execution(task_id, ["succeeded"], timeout=30) for task_id in ids]
    assert all(len(attempts) == 1 for attempts in executions), "an execution ran twice"
    assert {attempts[0]["attempt"] for attempts in executions} == {1}
    ran_by = [attempts[0]["agent"] for attempts in executions]
    assert second.name in ran_by, ran_by
    assert requests_to(api, RELEASE_ROUTE) >= 1
