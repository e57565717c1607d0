"""Agents: enrollment, tokens, revocation, listing, draining."""

from __future__ import annotations

import pytest

from octopus.core.enums import AgentStatus
from octopus.core.models import AgentFacts
from octopus.errors import Conflict, NotFound
from octopus.store import SqlStore
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent


def test_enroll_then_find_by_token(store: SqlStore, clock: FixedClock) -> None:
    agent = store.enroll_agent("a1", labels={"zone": "eu"}, token_hash="t1", now=clock.now)
    assert (agent.name, agent.status, agent.labels) == ("a1", AgentStatus.ONLINE, {"zone": "eu"})
    assert (agent.enrolled_at, agent.revoked) == (clock.now, False)
    assert store.agent_for_token("t1") == agent
    assert store.get_agent("a1") == agent


def test_unknown_token_finds_no_agent(store: SqlStore) -> None:
    assert store.agent_for_token("nope") is None


def test_enroll_a_taken_name_is_a_conflict(store: SqlStore, clock: FixedClock) -> None:
    store.enroll_agent("a1", labels={}, token_hash="t1", now=clock.now)
    with pytest.raises(Conflict):
        store.enroll_agent("a1", labels={}, token_hash="t2", now=clock.now)
    assert store.agent_for_token("t2") is None


def test_enroll_with_a_token_in_use_is_a_conflict(store: SqlStore, clock: FixedClock) -> None:
    store.enroll_agent("a1", labels={}, token_hash="t1", now=clock.now)
    with pytest.raises(Conflict):
        store.enroll_agent("a2", labels={}, token_hash="t1", now=clock.now)


def test_revoked_token_is_not_found_and_the_name_can_enroll_again(
    store: SqlStore, clock: FixedClock
) -> None:
    store.enroll_agent("a1", labels={"old": "x"}, token_hash="t1", now=clock.now)
    revoked = store.revoke_agent("a1", now=clock.now)
    assert revoked.revoked and revoked.status is AgentStatus.OFFLINE
    assert store.agent_for_token("t1") is None
    assert store.list_agents() == []
    assert store.revoke_agent("a1", now=clock.now).revoked
    again = store.enroll_agent("a1", labels={"new": "y"}, token_hash="t2", now=clock.advance(1))
    assert (again.revoked, again.labels, again.enrolled_at) == (False, {"new": "y"}, clock.now)
    assert store.agent_for_token("t2") == again


def test_revoke_or_drain_an_unknown_agent_is_not_found(store: SqlStore, clock: FixedClock) -> None:
    with pytest.raises(NotFound):
        store.revoke_agent("ghost", now=clock.now)
    with pytest.raises(NotFound):
        store.set_draining("ghost", True, now=clock.now)
    with pytest.raises(NotFound):
        store.get_agent("ghost")


def test_heartbeat_stores_facts_and_labels(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    add_agent("a1")
    facts = AgentFacts(
        hostname="host",
        ip="10.0.0.1",
        os_user="octo",
        pid=4242,
        started_at=clock.now,
        concurrency=4,
        free_slots=3,
        running=(),
        plugin_versions={"demo": "abc"},
        cpu_percent=12.5,
        memory_percent=40.0,
        version="0.1.0",
    )
    beat = store.record_heartbeat(
        "a1",
        facts=facts,
        labels={"zone": "eu"},
        draining=False,
        now=clock.advance(5),
        lease_seconds=30,
    )
    assert (beat.name, beat.status, beat.cancel) == ("a1", AgentStatus.ONLINE, [])
    agent = store.get_agent("a1")
    assert agent.facts == facts
    assert (agent.labels, agent.last_heartbeat) == ({"zone": "eu"}, clock.now)


def test_list_agents_by_name(store: SqlStore, add_agent: AddAgent) -> None:
    for name in ("b", "c", "a"):
        add_agent(name)
    assert [a.name for a in store.list_agents()] == ["a", "b", "c"]


def test_draining_reported_by_the_agent_and_set_by_an_operator(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    assert add_agent("a1", draining=True).status is AgentStatus.DRAINING
    assert store.set_draining("a1", False, now=clock.now).status is AgentStatus.ONLINE
    assert store.set_draining("a1", True, now=clock.now).status is AgentStatus.DRAINING


def test_draining_an_offline_agent_keeps_it_offline(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    add_agent("a1")
    store.reap(now=clock.advance(60), client_timeout=30)
    assert store.set_draining("a1", True, now=clock.now).status is AgentStatus.OFFLINE
