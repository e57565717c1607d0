"""Time end to end, with real server and agent processes: a scheduled task fires once at its
time; an interval task fires at its rate, pauses, resumes and stops on cancel; an ``all``
interval task runs on every agent at every firing; a restart applies the missed-run policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from tests.e2e.conftest import AgentFactory, ServerFactory
from tests.e2e.harness import ApiClient, stays, wait_for


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def runs(api: ApiClient, task_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.get_task(task_id)["runs"]
    return sorted(found, key=lambda run: run["fire_time"])


def fired(api: ApiClient, task_id: int, status: str = "succeeded") -> list[dict[str, Any]]:
    return [run for run in runs(api, task_id) if run["status"] == status]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_scheduled_task_fires_once_at_its_time(api: ApiClient, agents: AgentFactory) -> None:
    agents.start(1)
    run_at = soon(1.5)
    task = api.create_task("example.echo", 1, type="scheduled", run_at=run_at, labels=agents.labels)
    assert task["status"] == "scheduled"
    done = api.wait_task(task["id"], timeout=15)
    assert done["status"] == "succeeded"
    [run] = done["runs"]
    [execution] = run["executions"]
    assert when(run["fire_time"]) == when(run_at)
    assert when(execution["started_at"]) >= when(run_at)  # never ahead of its time
    assert stays(lambda: len(runs(api, task["id"])) == 1, 1.0)


def test_an_interval_task_fires_pauses_resumes_and_stops(
    api: ApiClient, agents: AgentFactory
) -> None:
    agents.start(1)
    task = api.create_task("example.echo", 1, type="interval", interval_seconds=0.5,
                           missed_policy="skip", labels=agents.labels)  # fmt: skip
    path = f"/api/v1/tasks/{task['id']}"
    wait_for(lambda: len(fired(api, task["id"])) >= 3, 15, message="three succeeded runs")
    times = [when(run["fire_time"]) for run in runs(api, task["id"])]
    assert {round((b - a).total_seconds(), 3) for a, b in pairwise(times)} == {0.5}

    assert api.ok("POST", f"{path}/pause")["status"] == "paused"
    paused = len(runs(api, task["id"]))
    # Longer than the scheduler's 2 s grace, so the firings while paused count as missed.
    assert stays(lambda: len(runs(api, task["id"])) == paused, 3.0)

    assert api.ok("POST", f"{path}/resume")["status"] == "active"
    wait_for(lambda: len(fired(api, task["id"])) >= 4, 15, message="a run after resuming")
    assert fired(api, task["id"], "missed"), "the firings while paused are recorded as missed"

    assert api.cancel_task(task["id"])["status"] == "cancelled"
    wait_for(
        lambda: not fired(api, task["id"], "pending") and not fired(api, task["id"], "running")
    )
    after = len(runs(api, task["id"]))
    assert stays(lambda: len(runs(api, task["id"])) == after, 1.5)


def test_an_all_interval_task_runs_on_every_agent_at_every_firing(
    api: ApiClient, agents: AgentFactory
) -> None:
    names = sorted(agent.name for agent in agents.start(2))
    task = api.create_task("example.echo", 1, type="interval", interval_seconds=1,
                           ownership="all", labels=agents.labels)  # fmt: skip
    done = wait_for(lambda: fired(api, task["id"])[:3] if len(fired(api, task["id"])) >= 3 else [],
                    20, message="three succeeded runs")  # fmt: skip
    api.cancel_task(task["id"])
    for run in done:
        assert sorted(e["agent"] for e in run["executions"]) == names
        assert run["summary"] == "2/2 succeeded"


def test_a_restart_keeps_schedules_and_records_missed_runs(
    server_factory: ServerFactory, agents: AgentFactory
) -> None:
    server = server_factory.start()
    agents.make(server=server).start()
    with server.api() as api:
        task = api.create_task("example.echo", 1, type="interval", interval_seconds=0.5,
                               labels=agents.labels)  # fmt: skip
        wait_for(lambda: len(fired(api, task["id"])) >= 2, 15, message="two runs")
        server.stop()  # a clean SIGTERM stop is tested in test_crashes.py
        # Seven fire times pass while it is down. Those over 2 s late at the restart are missed
        # and run_once fires the newest of them, so at least two are left to record: 3.5 s
        # down (2 s gave one, or two, depending on how fast the server came back).
        assert stays(lambda: not server.healthy(), 3.5)
        server.start()
        missed = wait_for(lambda: fired(api, task["id"], "missed"), 15, message="missed runs")
        assert len(missed) >= 2 and all("missed" in run["reason"] for run in missed)

        last_missed = max(when(run["fire_time"]) for run in missed)

        def caught_up() -> list[dict[str, Any]]:
            return [r for r in fired(api, task["id"]) if when(r["fire_time"]) > last_missed]

        # run_once: the missed fire times are recorded, the newest due one fires (once).
        wait_for(caught_up, 15, message="a run after the missed ones")
        wait_for(lambda: len(fired(api, task["id"])) >= 4, 15, message="firing again on schedule")
        assert api.get_task(task["id"])["status"] == "active"
        api.cancel_task(task["id"])


def test_interval_runs_are_fired_ahead_and_start_on_their_time(
    api: ApiClient, agents: AgentFactory
) -> None:
    agents.start(1)
    task = api.create_task("example.echo", 1, type="interval", interval_seconds=0.5,
                           labels=agents.labels)  # fmt: skip
    done = wait_for(lambda: fired(api, task["id"])[1:6] if len(fired(api, task["id"])) >= 6 else [],
                    20, message="six succeeded runs")  # fmt: skip
    api.cancel_task(task["id"])
    ahead = 0
    for run in done:
        [execution] = run["executions"]
        assert when(execution["started_at"]) >= when(run["fire_time"])  # never before its time
        ahead += when(execution["queued_at"]) < when(run["fire_time"])
    assert ahead, "no run was fired ahead of its time"
