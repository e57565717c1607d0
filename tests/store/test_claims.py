"""Claiming executions under lease: slots, readiness, labels, draining, and no double claims."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from octopus.core.enums import AgentStatus, ExecutionStatus, Ownership, RunStatus, TaskStatus
from octopus.core.models import AgentFacts, ExecutionError, TaskSpec
from octopus.store import SqlStore, open_store
from octopus.store.base import Claimed, Outcome, PluginVersion
from tests.conftest import FixedClock
from tests.store.conftest import DEMO, LEASE_SECONDS, AddAgent

Claim = Callable[..., list[Claimed]]
Adhoc = Callable[..., int]
pytestmark = pytest.mark.usefixtures("demo_plugin")
FAILED = Outcome(status=ExecutionStatus.FAILED, error=ExecutionError(type="E", message="m"))


def test_claim_leases_the_execution_with_what_the_agent_needs(
    store: SqlStore,
    clock: FixedClock,
    add_agent: AddAgent,
    adhoc: Adhoc,
    claim: Claim,
    demo_plugin: PluginVersion,
) -> None:
    add_agent("a1")
    task_id = adhoc(args=[1, {"x": None}], kwargs={"k": "v"}, timeout_seconds=9.0)
    [claimed] = claim("a1", slots=4)
    execution = claimed.execution
    assert (execution.status, execution.agent) == (ExecutionStatus.RUNNING, "a1")
    assert execution.started_at == clock.now
    assert execution.lease_expires_at == clock.now + timedelta(seconds=LEASE_SECONDS)
    assert execution.plugin_sha256 == demo_plugin.sha256
    assert (claimed.plugin, claimed.action) == ("demo", "echo")
    assert (claimed.args, claimed.kwargs) == ([1, {"x": None}], {"k": "v"})
    assert (claimed.timeout_seconds, claimed.plugin_sha256) == (9.0, demo_plugin.sha256)
    assert store.get_task(task_id).status is TaskStatus.RUNNING
    assert store.list_runs(task_id)[0].status is RunStatus.RUNNING
    assert store.list_runs(task_id)[0].started_at == clock.now
    assert claim("a1", slots=4) == []


def test_claim_takes_no_more_than_its_slots_oldest_first(
    add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    ids = [adhoc() for _ in range(3)]
    assert [c.execution.task_id for c in claim("a1", slots=2)] == ids[:2]
    assert [c.execution.task_id for c in claim("a1", slots=0)] == []
    assert [c.execution.task_id for c in claim("a1", slots=5)] == ids[2:]


def test_own_executions_come_before_unassigned_ones(
    add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    unassigned = adhoc()
    add_agent("a1")
    own = adhoc(ownership=Ownership.SPECIFIC, target="a1")
    assert [c.execution.task_id for c in claim("a1", slots=1)] == [own]
    assert [c.execution.task_id for c in claim("a1", slots=1)] == [unassigned]


def test_an_execution_waits_for_its_not_before(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    adhoc(max_retries=1, retry_backoff_seconds=10)
    [first] = claim("a1")
    store.finish_execution(first.execution.id, agent="a1", outcome=FAILED, now=clock.now)
    clock.advance(9)
    assert claim("a1") == []
    clock.advance(1)
    assert [c.execution.attempt for c in claim("a1")] == [2]


def test_unassigned_work_needs_matching_labels(
    clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    adhoc(labels={"gpu": "yes"})
    add_agent("cpu", gpu="no")
    add_agent("gpu", gpu="yes", zone="eu")
    assert claim("cpu") == []
    assert [c.execution.agent for c in claim("gpu")] == ["gpu"]


def test_label_matching_looks_past_work_it_cannot_take(
    add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    for _ in range(3):
        adhoc(labels={"gpu": "yes"})
    wanted = adhoc()
    add_agent("cpu")
    assert [c.execution.task_id for c in claim("cpu", slots=3)] == [wanted]


def test_draining_offline_revoked_and_unknown_agents_claim_nothing(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("draining", draining=True)
    add_agent("gone")
    add_agent("revoked")
    for name in ("draining", "gone", "revoked", "nobody"):
        adhoc(ownership=Ownership.SPECIFIC, target=name)
    adhoc()
    store.revoke_agent("revoked", now=clock.now)
    clock.advance(60)
    add_agent("fresh")  # keeps the reaper from taking every agent offline
    store.reap(now=clock.now, client_timeout=30)
    assert store.get_agent("gone").status is AgentStatus.OFFLINE
    for name in ("draining", "gone", "revoked", "nobody"):
        assert claim(name, slots=5) == []


def test_set_draining_stops_claims_and_resuming_restores_them(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    adhoc(ownership=Ownership.SPECIFIC, target="a1")
    store.set_draining("a1", True, now=clock.now)
    beat = store.record_heartbeat(
        "a1", facts=AgentFacts(), labels={}, draining=False, now=clock.now, lease_seconds=30
    )
    assert beat.status is AgentStatus.DRAINING
    assert claim("a1") == []
    store.set_draining("a1", False, now=clock.now)
    assert len(claim("a1")) == 1


def test_missing_plugin_fails_the_execution_instead_of_claiming_it(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc(plugin="vanished")
    wanted = adhoc()
    assert [c.execution.task_id for c in claim("a1", slots=2)] == [wanted]
    [execution], _ = store.list_executions(task_id=task_id)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.error is not None and execution.error.type == "PluginNotFound"
    assert store.get_task(task_id).status is TaskStatus.FAILED


def test_an_execution_is_claimed_once(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1", draining=True)
    add_agent("a2", draining=True)
    adhoc()  # unassigned: both agents drain
    store.set_draining("a1", False, now=clock.now)
    store.set_draining("a2", False, now=clock.now)
    assert len(claim("a1", slots=3)) == 1
    assert claim("a2", slots=3) == []


def test_concurrent_claims_on_postgres_get_disjoint_executions(
    postgres_url: str, clock: FixedClock, make_spec: Callable[..., TaskSpec]
) -> None:
    """Threads on two stores (two pools) race for 40 unassigned executions."""
    store_a, store_b = open_store(postgres_url), open_store(postgres_url)
    names = [f"a{i}" for i in range(4)]
    for name in names:
        store_a.enroll_agent(name, labels={}, token_hash=name, now=clock.now)
    store_a.sync_plugins([DEMO], now=clock.now)
    for name in names:
        store_a.set_draining(name, True, now=clock.now)
    for _ in range(40):
        store_a.create_task(make_spec(), now=clock.now)  # unassigned: every agent drains
    for name in names:
        store_a.set_draining(name, False, now=clock.now)
    results: dict[str, list[int]] = {}
    barrier = threading.Barrier(len(names))

    def work(name: str, store: SqlStore) -> None:
        barrier.wait()
        taken: list[int] = []
        for _ in range(10):
            claimed = store.claim(name, slots=2, now=clock.now, lease_seconds=30).claimed
            taken += [c.execution.id for c in claimed]
        results[name] = taken

    threads = [
        threading.Thread(target=work, args=(name, store_a if i % 2 else store_b))
        for i, name in enumerate(names)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    rest = store_a.claim("a0", slots=40, now=clock.now, lease_seconds=30).claimed
    store_a.close()
    store_b.close()
    every = [i for taken in results.values() for i in taken] + [c.execution.id for c in rest]
    assert len(every) == len(set(every)) == 40
    assert sum(1 for taken in results.values() if taken) > 1
