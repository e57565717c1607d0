"""The reaper's sweep: offline agents, expired leases, stranded queued executions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from octopus.core.enums import AgentStatus, ExecutionStatus, OnLost, Ownership, RunStatus
from octopus.core.models import AgentFacts
from octopus.errors import Fenced
from octopus.store import SqlStore
from octopus.store.base import Claimed, Outcome, Wake
from tests.conftest import FixedClock
from tests.store.conftest import LEASE_SECONDS, AddAgent

Claim = Callable[..., list[Claimed]]
Adhoc = Callable[..., int]
pytestmark = pytest.mark.usefixtures("demo_plugin")
TIMEOUT = 30.0


def _beat(store: SqlStore, clock: FixedClock, name: str, running: tuple[int, ...] = ()) -> None:
    store.record_heartbeat(
        name,
        facts=AgentFacts(running=running),
        labels={},
        draining=False,
        now=clock.now,
        lease_seconds=LEASE_SECONDS,
    )


def test_silent_agents_go_offline_and_heartbeats_bring_them_back(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    add_agent("quiet")
    add_agent("chatty")
    clock.advance(TIMEOUT / 2)
    _beat(store, clock, "chatty")
    clock.advance(TIMEOUT / 2 + 1)
    sweep = store.reap(now=clock.now, client_timeout=TIMEOUT)
    assert sweep.offline == ["quiet"]
    assert store.get_agent("quiet").status is AgentStatus.OFFLINE
    assert store.get_agent("chatty").status is AgentStatus.ONLINE
    assert store.reap(now=clock.now, client_timeout=TIMEOUT).offline == []
    _beat(store, clock, "quiet")
    assert store.get_agent("quiet").status is AgentStatus.ONLINE


def test_heartbeat_renews_the_leases_the_agent_still_holds(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    adhoc()
    adhoc()
    renewed, forgotten = claim("a1", slots=2)
    clock.advance(LEASE_SECONDS - 1)
    _beat(store, clock, "a1", running=(renewed.execution.id,))
    clock.advance(2)
    sweep = store.reap(now=clock.now, client_timeout=TIMEOUT)
    assert sweep.lost == [forgotten.execution.id]
    assert store.get_execution(renewed.execution.id).status is ExecutionStatus.RUNNING
    lost = store.get_execution(forgotten.execution.id)
    assert lost.error is not None and lost.error.type == "LeaseExpired"


def test_heartbeat_of_an_unknown_agent_is_not_found(store: SqlStore, clock: FixedClock) -> None:
    from octopus.errors import NotFound

    with pytest.raises(NotFound):
        _beat(store, clock, "ghost")


def test_expired_anyone_execution_is_lost_and_retried_unassigned(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc()
    [claimed] = claim("a1")
    clock.advance(LEASE_SECONDS + 1)
    add_agent("a2")
    sweep = store.reap(now=clock.now, client_timeout=TIMEOUT)
    assert sweep.lost == [claimed.execution.id]
    assert sweep.wake.anyone
    retry, _ = store.list_executions(task_id=task_id, limit=1)
    assert (retry[0].agent, retry[0].status, retry[0].attempt) == (None, ExecutionStatus.QUEUED, 2)
    assert [c.execution.id for c in claim("a2")] == [retry[0].id]
    with pytest.raises(Fenced):
        store.finish_execution(
            claimed.execution.id,
            agent="a1",
            outcome=Outcome(status=ExecutionStatus.SUCCEEDED),
            now=clock.now,
        )


def test_on_lost_fail_does_not_move_the_execution(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc(on_lost=OnLost.FAIL)
    claim("a1")
    clock.advance(LEASE_SECONDS + 1)
    store.reap(now=clock.now, client_timeout=TIMEOUT)
    assert store.list_executions(task_id=task_id)[1] == 1
    assert store.list_runs(task_id)[0].status is RunStatus.FAILED


@pytest.mark.parametrize("ownership", [Ownership.ALL, Ownership.SPECIFIC])
def test_lost_all_and_specific_executions_stay_on_their_agent(
    store: SqlStore,
    clock: FixedClock,
    add_agent: AddAgent,
    adhoc: Adhoc,
    claim: Claim,
    ownership: Ownership,
) -> None:
    add_agent("a1")
    task_id = adhoc(ownership=ownership, target="a1" if ownership is Ownership.SPECIFIC else None)
    claim("a1")
    clock.advance(LEASE_SECONDS + 1)
    _beat(store, clock, "a1")
    add_agent("a2")
    sweep = store.reap(now=clock.now, client_timeout=TIMEOUT)
    assert len(sweep.lost) == 1
    [execution], total = store.list_executions(task_id=task_id)
    assert (execution.agent, execution.status, total) == ("a1", ExecutionStatus.LOST, 1)
    assert store.list_runs(task_id)[0].status is RunStatus.FAILED


def test_lost_specific_execution_is_retried_on_its_agent(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc(ownership=Ownership.SPECIFIC, target="a1", max_retries=1)
    claim("a1")
    clock.advance(LEASE_SECONDS + 1)
    _beat(store, clock, "a1")
    sweep = store.reap(now=clock.now, client_timeout=TIMEOUT)
    assert sweep.wake == Wake(agents=frozenset({"a1"}))
    retry, _ = store.list_executions(task_id=task_id, limit=1)
    assert (retry[0].agent, retry[0].attempt) == ("a1", 2)


def test_queued_work_of_offline_agents(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc
) -> None:
    add_agent("gone")
    all_task = adhoc(ownership=Ownership.ALL)
    anyone_task = adhoc()
    specific_task = adhoc(ownership=Ownership.SPECIFIC, target="gone")
    clock.advance(TIMEOUT + 1)
    sweep = store.reap(now=clock.now, client_timeout=TIMEOUT)
    assert sweep.offline == ["gone"]
    [stranded], _ = store.list_executions(task_id=all_task)
    assert (stranded.status, stranded.agent) == (ExecutionStatus.LOST, "gone")
    assert stranded.error is not None and stranded.error.type == "AgentOffline"
    assert sweep.lost == [stranded.id]
    [freed], _ = store.list_executions(task_id=anyone_task)
    assert (freed.status, freed.agent) == (ExecutionStatus.QUEUED, None)
    assert sweep.wake.anyone
    [waiting], _ = store.list_executions(task_id=specific_task)
    assert (waiting.status, waiting.agent) == (ExecutionStatus.QUEUED, "gone")
    assert store.list_runs(all_task)[0].status is RunStatus.FAILED


def test_reap_with_nothing_to_do_changes_nothing(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    adhoc()
    claim("a1")
    sweep = store.reap(now=clock.now, client_timeout=TIMEOUT)
    assert (sweep.lost, sweep.offline, sweep.wake) == ([], [], Wake())


def test_queued_anyone_work_of_a_draining_agent_goes_back_to_the_pool(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc()
    [queued] = store.list_executions(task_id=task_id)[0]
    assert queued.agent == "a1"
    store.set_draining("a1", True, now=clock.now)
    sweep = store.reap(now=clock.now, client_timeout=TIMEOUT)
    assert sweep.wake.anyone
    assert store.get_execution(queued.id).agent is None
    add_agent("a2")
    [taken] = claim("a2")
    assert taken.execution.id == queued.id


def test_queued_specific_work_of_a_draining_agent_stays_with_it(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc
) -> None:
    add_agent("a1")
    task_id = adhoc(ownership=Ownership.SPECIFIC, target="a1")
    store.set_draining("a1", True, now=clock.now)
    store.reap(now=clock.now, client_timeout=TIMEOUT)
    [queued] = store.list_executions(task_id=task_id)[0]
    assert queued.agent == "a1" and queued.status is ExecutionStatus.QUEUED
