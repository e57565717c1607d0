"""One run's agent looked up alone (``store._lookup``) is the agent the snapshot of every
agent would choose (``core.dispatch.least_loaded``), on both backends, over many random
clusters: agents idle and busy, with one to three slots, labels that match or not, online,
draining, revoked, with names that a language collation would sort otherwise than Python
(this machine's PostgreSQL databases collate as C.UTF-8, so both orders agree here)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from octopus.core.dispatch import least_loaded
from octopus.core.enums import Ownership
from octopus.core.models import AgentFacts, TaskSpec
from octopus.store import SqlStore
from octopus.store import _lookup as lookup
from tests.conftest import FixedClock
from tests.store.conftest import LEASE_SECONDS

CLUSTERS = 25
NAMES = ["a-1", "a1", "A2", "a_3", "b", "B-1", "b.2", "c9", "C10", "z"]
ZONES = ["eu", "us"]


def _cluster(store: SqlStore, clock: FixedClock, rng: random.Random, number: int) -> None:
    """Agents named ``NAMES`` (with the cluster's number), some holding queued work."""
    for name in rng.sample(NAMES, rng.randint(1, len(NAMES))):
        name = f"{name}-{number}"
        zone = rng.choice(ZONES)
        store.enroll_agent(name, labels={"zone": zone}, token_hash=f"h-{name}", now=clock.now)
        slots = rng.randint(1, 3)
        store.record_heartbeat(
            name,
            facts=AgentFacts(concurrency=slots, free_slots=slots),
            labels={"zone": zone},
            draining=rng.random() < 0.15,
            now=clock.now,
            lease_seconds=LEASE_SECONDS,
        )
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            target = TaskSpec(
                name="busy", plugin="demo", action="echo", ownership=Ownership.SPECIFIC,
                target=name,
            )  # fmt: skip
            store.create_task(target, now=clock.now)
        if rng.random() < 0.1:
            store.revoke_agent(name, now=clock.now)


@pytest.mark.parametrize("seed", range(CLUSTERS))
def test_the_look_up_chooses_as_the_snapshot_does(
    store: SqlStore, clock: FixedClock, seed: int
) -> None:
    rng = random.Random(seed)
    _cluster(store, clock, rng, seed)
    with store.engine.connect() as conn:
        every = lookup.every_agent(conn)
        for required in ({}, {"zone": "eu"}, {"zone": "us"}, {"zone": "mars"}):
            looked_up = lookup.least_loaded_agent(conn, required)
            chosen = least_loaded(every, required)
            assert (looked_up.name if looked_up else None) == chosen, (seed, required)
            if looked_up is not None:
                assert looked_up == next(load for load in every if load.name == chosen)


def test_a_named_agent_comes_with_its_load_whatever_its_status(
    store: SqlStore, clock: FixedClock, add_agent: Callable[..., object]
) -> None:
    add_agent("a1", draining=True)
    busy = TaskSpec(
        name="t", plugin="demo", action="echo", ownership=Ownership.SPECIFIC, target="a1"
    )
    store.create_task(busy, now=clock.now)
    with store.engine.connect() as conn:
        found = lookup.named(conn, "a1")
        assert found is not None and found.assigned == 1 and found.status.value == "draining"
        assert lookup.named(conn, "nobody") is None
