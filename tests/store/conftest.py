"""Fixtures for the store contract suite: agents that have heartbeated, a stored plugin."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from octopus.core.models import Agent, AgentFacts, TaskSpec
from octopus.store import SqlStore
from octopus.store.base import Claimed, PluginVersion
from tests.conftest import FixedClock

LEASE_SECONDS = 30.0
DEMO = PluginVersion(
    name="demo", sha256="a" * 64, source=b"def echo(x):\n    return x\n", actions=()
)

AddAgent = Callable[..., Agent]


@pytest.fixture
def add_agent(store: SqlStore, clock: FixedClock) -> AddAgent:
    """``add_agent(name, concurrency=2, draining=False, **labels)``: enrolled and heartbeating."""

    def add(name: str, *, concurrency: int = 2, draining: bool = False, **labels: str) -> Agent:
        store.enroll_agent(name, labels=labels, token_hash=f"hash-{name}", now=clock.now)
        facts = AgentFacts(concurrency=concurrency, free_slots=concurrency)
        store.record_heartbeat(
            name,
            facts=facts,
            labels=labels,
            draining=draining,
            now=clock.now,
            lease_seconds=LEASE_SECONDS,
        )
        return store.get_agent(name)

    return add


@pytest.fixture
def demo_plugin(store: SqlStore, clock: FixedClock) -> PluginVersion:
    """The ``demo`` plugin stored, so its executions can be claimed."""
    store.sync_plugins([DEMO], now=clock.now)
    return DEMO


@pytest.fixture
def claim(store: SqlStore, clock: FixedClock) -> Callable[..., list[Claimed]]:
    """``claim(agent, slots=1)`` at the clock's time with the standard lease."""

    def take(agent: str, slots: int = 1) -> list[Claimed]:
        return store.claim(agent, slots=slots, now=clock.now, lease_seconds=LEASE_SECONDS).claimed

    return take


@pytest.fixture
def adhoc(
    store: SqlStore, clock: FixedClock, make_spec: Callable[..., TaskSpec]
) -> Callable[..., int]:
    """``adhoc(**overrides)``: create an adhoc task now and return its id."""

    def create(**overrides: object) -> int:
        return store.create_task(make_spec(**overrides), now=clock.now).task.id

    return create
