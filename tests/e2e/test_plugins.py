"""Plugins change under running agents: the new version is used without restarts."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from octopus.plugins.loader import sha256_of
from tests.e2e.conftest import AgentFactory, ServerFactory, Trio
from tests.e2e.harness import PLUGIN_SCAN_SECONDS, ApiClient, ServerProcess, wait_for

pytestmark = pytest.mark.e2e

VERSION_SOURCE = '''"""A plugin whose answer says which version of the file ran."""


def version() -> int:
    """Return the version number written in this file."""
    return {number}
'''


def _publish(server: ServerProcess, api: ApiClient, name: str, source: str) -> str:
    """Write the plugin file and wait until the server serves this exact version."""
    path = server.plugins_dir / f"{name}.py"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(source, encoding="utf-8")
    tmp.replace(path)  # atomic: the scanner never sees half a file
    expected = sha256_of(source.encode())

    def served() -> bool:
        plugin = api.plugin(name)
        return plugin is not None and plugin["sha256"] == expected

    wait_for(served, PLUGIN_SCAN_SECONDS * 10 + 5, 0.1, f"plugin {name} at {expected[:12]}")
    return expected


def test_edited_plugin_runs_its_new_version_without_restarts(
    server: ServerProcess, api: ApiClient, trio: Trio
) -> None:
    name = f"hot_{uuid.uuid4().hex[:8]}"
    pids = [agent.pid for agent in trio.agents]

    _publish(server, api, name, VERSION_SOURCE.format(number=1))
    first = api.create_task(f"{name}.version", ownership="all", labels=trio.labels)
    assert api.wait_task(first["id"])["status"] == "succeeded"
    assert {e["result"] for e in api.executions(first["id"])} == {1}

    _publish(server, api, name, VERSION_SOURCE.format(number=2))
    second = api.create_task(f"{name}.version", ownership="all", labels=trio.labels)
    assert api.wait_task(second["id"])["status"] == "succeeded"
    assert {e["result"] for e in api.executions(second["id"])} == {2}

    assert [agent.pid for agent in trio.agents] == pids
    assert all(agent.is_running() for agent in trio.agents)


def test_unknown_plugin_or_action_is_refused(api: ApiClient) -> None:
    for plugin, action in (("no_such_plugin", "run"), ("e2eplug", "no_such_action")):
        response = api.http.post("/api/v1/tasks", json={"plugin": plugin, "action": action})
        assert response.status_code in (404, 422), response.text


def test_versions_rise_with_each_edit(server: ServerProcess, api: ApiClient) -> None:
    name = f"v{uuid.uuid4().hex[:8]}"
    _publish(server, api, name, VERSION_SOURCE.format(number=1))
    first = api.plugin(name)
    _publish(server, api, name, VERSION_SOURCE.format(number=2))
    second = api.plugin(name)
    assert first is not None and second is not None
    assert second["version"] > first["version"] >= 1


def test_a_plugin_tampered_with_in_the_database_is_refused_before_it_runs(
    server_factory: ServerFactory, agents: AgentFactory, tmp_path: Path
) -> None:
    # Rescans would rewrite the row from the file: keep them out of the way.
    server = server_factory.start(extra_env={"OCTOPUS_PLUGIN_SCAN_SECONDS": "3600"})
    agents.make(server=server).start()
    canary = tmp_path / "CANARY"
    evil = (
        f"import pathlib\npathlib.Path({str(canary)!r}).write_text('ran')\n\n\n"
        "def hello():\n    return 'pwned'\n"
    )
    # Someone with write access to the database, but not to the server's key, swaps the file.
    with sqlite3.connect(server.data_dir / "octopus.db") as db:
        db.execute(
            "UPDATE plugins SET source = ?, sha256 = ? WHERE name = 'example'",
            (evil.encode(), sha256_of(evil.encode())),
        )
    with server.api() as api:
        task = api.create_task("example.hello", labels=agents.labels)
        done = api.wait_task(task["id"])
    [execution] = [e for run in done["runs"] for e in run["executions"]]
    assert done["status"] == "failed" and execution["status"] == "failed"
    assert "signature does not match" in execution["error"]["message"]
    assert not canary.exists(), "the tampered plugin ran"
