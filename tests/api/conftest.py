"""In-process API tests: the real app on a real store (SQLite file or PostgreSQL database)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from octopus.config import ServerSettings
from octopus.server.app import build_state, create_app
from octopus.server.state import ServerState
from octopus.store.base import Store

REPO_PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
JOIN_TOKEN = "join-token-for-tests-0123456789"

AgentClient = Callable[..., dict[str, str]]


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for source in REPO_PLUGINS.glob("*.py"):
        (plugins / source.name).write_bytes(source.read_bytes())
    return ServerSettings(
        data_dir=tmp_path / "data",
        plugins_dir=plugins,
        admin_token=ADMIN_TOKEN,
        join_token=JOIN_TOKEN,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
def state(settings: ServerSettings, store: Store) -> ServerState:
    return build_state(settings, store=store)


@pytest.fixture
def client(settings: ServerSettings, state: ServerState) -> Iterator[TestClient]:
    app = create_app(settings, state)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as test_client:
        yield test_client


@pytest.fixture
def anonymous(client: TestClient) -> TestClient:
    """The same app without the admin token."""
    client.headers.pop("Authorization")
    return client


@pytest.fixture
def enroll(client: TestClient) -> AgentClient:
    """Enroll an agent and send it a first heartbeat; returns its Authorization header."""

    def enroll_agent(name: str, *, concurrency: int = 2, **labels: str) -> dict[str, str]:
        response = client.post(
            "/api/v1/agents/enroll",
            json={"name": name, "labels": labels},
            headers={"Authorization": f"Bearer {JOIN_TOKEN}"},
        )
        assert response.status_code == 201, response.text
        headers = {"Authorization": f"Bearer {response.json()['token']}"}
        beat = client.post(
            f"/api/v1/agents/{name}/heartbeat",
            json={
                "facts": {"concurrency": concurrency, "free_slots": concurrency},
                "labels": labels,
            },
            headers=headers,
        )
        assert beat.status_code == 200, beat.text
        return headers

    return enroll_agent
