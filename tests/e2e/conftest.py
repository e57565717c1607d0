"""Fixtures for the end-to-end tests: real server and agent processes, an admin client."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    REGISTRY,
    AgentProcess,
    ApiClient,
    ServerProcess,
)

_agent_numbers = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is an e2e test, marked or not."""
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On failure, add the output tails of every live server and agent to the report."""
    report = yield
    if report.failed and REGISTRY:
        for process in list(REGISTRY):
            report.sections.append((f"{process.label} output (tail)", process.tails()))
    return report


# ---- servers -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One SQLite-backed server shared by the tests that do not stop it."""
    process = ServerProcess(tmp_path_factory.mktemp("shared-server"))
    try:
        process.start()
        yield process
    finally:
        process.stop()
        process.cleanup()


@dataclass
class ServerFactory:
    """Starts servers of the test's own (to restart, stop or point at PostgreSQL)."""

    root: Path
    started: list[ServerProcess] = field(default_factory=list)

    def start(self, *, database_url: str | None = None, **kwargs: Any) -> ServerProcess:
        label = f"server{len(self.started) + 1}"
        process = ServerProcess(self.root / label, database_url=database_url, label=label, **kwargs)
        self.started.append(process)
        return process.start()

    def cleanup(self) -> None:
        for process in self.started:
            process.cleanup()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start private servers; all are killed at teardown."""
    factory = ServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def pg_server(server_factory: ServerFactory, postgres_url: str) -> ServerProcess:
    """A private server on the session's PostgreSQL test database, emptied for this test.

    ``postgres_url`` comes from tests/conftest.py; an unreachable PostgreSQL fails the test.
    """
    return server_factory.start(database_url=postgres_url)


@pytest.fixture
def api(server: ServerProcess) -> Iterator[ApiClient]:
    """An admin client for the shared server."""
    with server.api() as client:
        yield client


# ---- agents --------------------------------------------------------------------------------


@dataclass
class AgentFactory:
    """Starts agents in one group: every agent gets the label ``group=<unique>``.

    Tasks that pass ``labels=factory.labels`` only reach this group's agents, so tests can
    share one server without their work landing on each other's agents.
    """

    server: ServerProcess
    root: Path
    group: str = field(default_factory=lambda: f"g{uuid.uuid4().hex[:8]}")
    started: list[AgentProcess] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return {"group": self.group}

    def make(
        self,
        name: str | None = None,
        *,
        server: ServerProcess | None = None,
        concurrency: int = 2,
        **options: Any,
    ) -> AgentProcess:
        """Create (not start) an agent; its name is unique across the session by default."""
        agent = AgentProcess(
            server or self.server,
            name or f"{self.group}-a{next(_agent_numbers)}",
            self.root,
            concurrency=concurrency,
            labels={**self.labels, **options.pop("labels", {})},
            **options,
        )
        self.started.append(agent)
        return agent

    def start(self, count: int = 1, **options: Any) -> list[AgentProcess]:
        """Start ``count`` agents at once and wait until the server shows each online."""
        agents = [self.make(**options) for _ in range(count)]
        for agent in agents:
            agent.spawn()
        for agent in agents:
            agent.wait_online()
        return agents

    def cleanup(self) -> None:
        for agent in self.started:
            agent.stop(timeout=5)
            agent.cleanup()


@pytest.fixture
def agents(server: ServerProcess, tmp_path: Path) -> Iterator[AgentFactory]:
    """Start agents of this test's own group; all are stopped and killed at teardown."""
    factory = AgentFactory(server, tmp_path / "agents")
    try:
        yield factory
    finally:
        factory.cleanup()


@dataclass(frozen=True)
class Trio:
    """Three agents shared by the tests that do not stop them."""

    agents: list[AgentProcess]
    labels: dict[str, str]

    @property
    def names(self) -> list[str]:
        return [agent.name for agent in self.agents]


@pytest.fixture(scope="session")
def trio(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    """Three real agents (concurrency 2) on the shared server, in a group of their own."""
    factory = AgentFactory(server, tmp_path_factory.mktemp("trio"), group="trio")
    try:
        factory.start(3)
        yield Trio(factory.started, factory.labels)
    finally:
        factory.cleanup()
