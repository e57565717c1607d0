"""The same server and agents on PostgreSQL instead of SQLite."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import AgentFactory
from tests.e2e.harness import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_tasks_run_on_a_postgresql_server(pg_server: ServerProcess, agents: AgentFactory) -> None:
    fleet = agents.start(2, server=pg_server)
    with pg_server.api() as api:
        everywhere = api.create_task("e2eplug.echo", "pg", ownership="all", labels=agents.labels)
        failing = api.create_task(
            "e2eplug.fail", max_retries=1, retry_backoff_seconds=0.1, labels=agents.labels
        )
        done = api.wait_task(everywhere["id"])
        assert done["status"] == "succeeded"
        assert sorted(e["agent"] for e in done["runs"][0]["executions"]) == sorted(
            agent.name for agent in fleet
        )
        assert api.wait_task(failing["id"])["status"] == "failed"
        assert [e["attempt"] for e in api.executions(failing["id"])] == [1, 2]
