"""The running server folds SQLite's write-ahead log into the database file by itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from octopus.server.app import CHECKPOINT_INTERVAL_SECONDS

BULK = "/api/v1/tasks/bulk"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_server_checkpoints_within_seconds_of_a_write(
    client: TestClient, database_url: str
) -> None:
    path = Path(database_url.removeprefix("sqlite:///"))
    before = path.stat().st_size
    items = [{"plugin": "example", "action": "hello", "args": ["x" * 200]}] * 200
    assert client.post(BULK, json={"tasks": items}).status_code == 201

    deadline = time.monotonic() + 5 * CHECKPOINT_INTERVAL_SECONDS
    while path.stat().st_size == before and time.monotonic() < deadline:
        time.sleep(0.05)

    assert path.stat().st_size > before, "no checkpoint copied the new tasks into the file"
