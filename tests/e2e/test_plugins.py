"""Plugins change under running agents: the new version is used without restarts."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import Trio
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

    from octopus.plugins.loader import sha256_of

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
