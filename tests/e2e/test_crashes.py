"""Processes that die or stop: kill -9 of an agent, SIGTERM drain, server restart."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from tests.e2e.conftest import AgentFactory, ServerFactory
from tests.e2e.harness import CLIENT_TIMEOUT_SECONDS, AgentProcess, ApiClient, wait_for

pytestmark = pytest.mark.e2e


def _running_on(api: ApiClient, task_id: int, agents: list[AgentProcess]) -> AgentProcess:
    (execution,) = api.wait_execution(task_id, ["running"])
    return next(agent for agent in agents if agent.name == execution["agent"])


def test_killed_agent_loses_its_execution_and_anyone_moves_on(
    api: ApiClient, agents: AgentFactory
) -> None:
    started = agents.start(2, concurrency=1)
    task = api.create_task("e2eplug.sleep", 3, on_lost="retry", labels=agents.labels)
    victim = _running_on(api, task["id"], started)
    workers = psutil.Process(victim.pid).children(recursive=True)
    assert workers, "the agent runs its actions in worker processes"

    killed_at = time.monotonic()
    victim.kill()
    wait_for(
        lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers),
        timeout=10,
        message="worker processes outlived their killed agent",
    )
    lost = api.wait_execution(task["id"], ["lost"], timeout=CLIENT_TIMEOUT_SECONDS + 12)
    assert lost[0]["agent"] == victim.name
    assert time.monotonic() - killed_at >= CLIENT_TIMEOUT_SECONDS * 0.5

    done = api.wait_task(task["id"], timeout=30)
    assert done["status"] == "succeeded"
    winner = [e for e in api.executions(task["id"]) if e["status"] == "succeeded"]
    assert len(winner) == 1
    assert winner[0]["agent"] != victim.name
    api.wait_agent(victim.name, "offline", timeout=CLIENT_TIMEOUT_SECONDS + 10)


def test_lost_execution_with_on_lost_fail_fails_the_task(
    api: ApiClient, agents: AgentFactory
) -> None:
    started = agents.start(2, concurrency=1)
    task = api.create_task("e2eplug.sleep", 3, on_lost="fail", labels=agents.labels)
    _running_on(api, task["id"], started).kill()
    done = api.wait_task(task["id"], timeout=CLIENT_TIMEOUT_SECONDS + 15)
    assert done["status"] == "failed"
    assert [e["status"] for e in api.executions(task["id"])] == ["lost"]


def test_sigterm_drains_running_work_then_exits_zero(api: ApiClient, agents: AgentFactory) -> None:
    (agent,) = agents.start(1)
    task = api.create_task("e2eplug.sleep", 2, labels=agents.labels)
    api.wait_execution(task["id"], ["running"])
    agent.signal(15)
    assert agent.wait(timeout=20) == 0
    done = api.wait_task(task["id"], timeout=10)
    assert done["status"] == "succeeded"
    assert [e["agent"] for e in api.executions(task["id"])] == [agent.name]


def test_work_created_while_an_agent_drains_runs_elsewhere(
    api: ApiClient, agents: AgentFactory
) -> None:
    (draining,) = agents.start(1)
    first = api.create_task("e2eplug.sleep", 3, labels=agents.labels)
    api.wait_execution(first["id"], ["running"])
    draining.signal(15)
    # Work created before the agent has handled its signal may still go to it; after the
    # server knows it drains, none does.
    api.wait_agent(draining.name, "draining")
    second = api.create_task("e2eplug.echo", "after drain", labels=agents.labels)
    assert draining.wait(timeout=20) == 0
    assert api.wait_task(first["id"])["status"] == "succeeded"

    (fresh,) = agents.start(1)
    done = api.wait_task(second["id"], timeout=CLIENT_TIMEOUT_SECONDS + 15)
    assert done["status"] == "succeeded"
    assert [e["agent"] for e in api.executions(second["id"]) if e["status"] == "succeeded"] == [
        fresh.name
    ]


def test_server_stops_promptly_and_cleanly_on_sigterm_while_agents_long_poll(
    server_factory: ServerFactory, agents: AgentFactory
) -> None:
    server = server_factory.start()
    agents.start(2, server=server)
    stopping = time.monotonic()
    code = server.stop()
    # uvicorn re-raises the signal it caught after a graceful shutdown, so -SIGTERM is clean too.
    assert code in (0, -signal.SIGTERM)
    assert time.monotonic() - stopping < 5
    assert "Traceback" not in server.stderr_path.read_text(encoding="utf-8")


def test_server_restart_keeps_data_and_agents_reconnect(
    server_factory: ServerFactory, agents: AgentFactory
) -> None:
    server = server_factory.start()
    fleet = agents.start(2, server=server)
    with server.api() as api:
        before = api.create_task("e2eplug.echo", "before", ownership="all", labels=agents.labels)
        assert api.wait_task(before["id"])["status"] == "succeeded"

    restarted_at = time.time()
    server.stop()
    server.start()

    with server.api() as api:
        kept = api.get_task(before["id"])
        assert kept["status"] == "succeeded"
        assert len(kept["runs"][0]["executions"]) == 2
        for agent in fleet:
            agent.spawned_at = restarted_at  # reconnect means a heartbeat after the restart
            agent.wait_online(timeout=30)
            assert agent.is_running()
        after = api.create_task("e2eplug.echo", "after", ownership="all", labels=agents.labels)
        done = api.wait_task(after["id"])
        assert done["status"] == "succeeded"
        assert sorted(e["agent"] for e in done["runs"][0]["executions"]) == sorted(
            agent.name for agent in fleet
        )
