"""Heartbeats recorded in batches, and agent tokens remembered until revoked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from octopus.core.enums import AgentStatus, Ownership
from octopus.core.models import AgentFacts
from octopus.errors import NotFound
from octopus.server.heartbeats import HeartbeatBatcher
from octopus.store import SqlStore
from octopus.store.base import Beat, Claimed, HeartbeatResult, PluginVersion
from tests.conftest import FixedClock
from tests.store.conftest import LEASE_SECONDS, AddAgent


def _beat(name: str, clock: FixedClock, *, running: tuple[int, ...] = (), **kw: object) -> Beat:
    facts = AgentFacts(concurrency=2, free_slots=1, running=running, hostname=f"host-{name}")
    return Beat(name=name, facts=facts, labels={}, draining=bool(kw.get("draining")), now=clock.now)


def test_one_batch_stores_every_agents_facts(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    add_agent("a1")
    add_agent("a2")
    clock.advance(5)
    results = store.record_heartbeats(
        [_beat("a1", clock), _beat("a2", clock, draining=True)], lease_seconds=LEASE_SECONDS
    )
    assert results["a1"].status is AgentStatus.ONLINE
    assert results["a2"].status is AgentStatus.DRAINING
    for name in ("a1", "a2"):
        agent = store.get_agent(name)
        assert (agent.last_heartbeat, agent.facts.hostname) == (clock.now, f"host-{name}")


def test_unknown_and_revoked_agents_are_left_out_of_a_batch(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    add_agent("a1")
    add_agent("gone")
    store.revoke_agent("gone", now=clock.now)
    beats = [_beat("a1", clock), _beat("gone", clock), _beat("ghost", clock)]
    results = store.record_heartbeats(beats, lease_seconds=LEASE_SECONDS)
    assert set(results) == {"a1"}
    assert store.get_agent("gone").status is AgentStatus.OFFLINE


def test_a_batch_renews_only_the_leases_each_agent_holds(
    store: SqlStore,
    clock: FixedClock,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
    adhoc: Callable[..., int],
    claim: Callable[..., list[Claimed]],
) -> None:
    add_agent("a1")
    add_agent("a2")
    adhoc(ownership=Ownership.SPECIFIC, target="a1")
    (held,) = claim("a1")
    clock.advance(20)
    # a2 names a1's execution: it does not hold it, so that lease is not touched by a2's beat.
    store.record_heartbeats(
        [_beat("a2", clock, running=(held.execution.id,))], lease_seconds=LEASE_SECONDS
    )
    before = store.get_execution(held.execution.id).lease_expires_at
    assert before == held.execution.lease_expires_at
    store.record_heartbeats(
        [_beat("a1", clock, running=(held.execution.id,))], lease_seconds=LEASE_SECONDS
    )
    renewed = store.get_execution(held.execution.id).lease_expires_at
    assert renewed == clock.now + timedelta(seconds=LEASE_SECONDS)


def test_a_batched_silence_still_takes_the_agent_offline(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    add_agent("quiet")
    add_agent("chatty")
    clock.advance(20)
    store.record_heartbeats([_beat("chatty", clock)], lease_seconds=LEASE_SECONDS)
    clock.advance(15)
    sweep = store.reap(now=clock.now, client_timeout=30)
    assert sweep.offline == ["quiet"]
    assert store.get_agent("chatty").status is AgentStatus.ONLINE


def test_a_remembered_token_is_forgotten_when_revoked(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    add_agent("a1")
    assert store.remembered_agent("hash-a1") is None
    assert store.agent_for_token("hash-a1") is not None
    remembered = store.remembered_agent("hash-a1")
    assert remembered is not None and remembered.name == "a1"
    store.revoke_agent("a1", now=clock.now)
    assert store.remembered_agent("hash-a1") is None
    assert store.agent_for_token("hash-a1") is None


def test_an_unknown_token_is_never_remembered(store: SqlStore) -> None:
    assert store.agent_for_token("nope") is None
    assert store.remembered_agent("nope") is None


def test_concurrent_heartbeats_share_one_batch_and_an_unknown_agent_fails_alone(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    add_agent("a1")
    add_agent("a2")
    batcher = HeartbeatBatcher(store, lease_seconds=LEASE_SECONDS)

    async def beat_all() -> list[object]:
        beats = [_beat(name, clock) for name in ("a1", "ghost", "a2")]
        return await asyncio.gather(*(batcher.record(b) for b in beats), return_exceptions=True)

    first, ghost, second = asyncio.run(beat_all())
    assert isinstance(ghost, NotFound)
    assert isinstance(first, HeartbeatResult) and first.name == "a1"
    assert isinstance(second, HeartbeatResult) and second.name == "a2"
