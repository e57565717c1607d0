"""When a claim may skip its look at the store (nothing woke its agent since its last empty
look, and that look is recent), and how work handed to a waiting claim reaches it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from octopus.core.enums import ExecutionStatus, Ownership
from octopus.core.models import Execution
from octopus.server.notifier import Notifier, Waiter
from octopus.store.base import Claimed, Wake


def _looked_and_found_nothing(notifier: Notifier, agent: str = "a1") -> None:
    notifier.found_nothing(agent, notifier.mark(agent))


def test_an_agent_that_found_nothing_and_was_not_woken_skips_its_next_look() -> None:
    notifier = Notifier(recheck_seconds=60)
    assert not notifier.nothing_new("a1")  # it never looked
    _looked_and_found_nothing(notifier)
    assert notifier.nothing_new("a1")
    notifier.wake(Wake(agents=frozenset({"a2"})))  # work for someone else
    assert notifier.nothing_new("a1")


def test_a_wake_for_the_agent_or_for_anyone_makes_it_look_again() -> None:
    for wake in (Wake(agents=frozenset({"a1", "a2"})), Wake(anyone=True)):
        notifier = Notifier(recheck_seconds=60)
        _looked_and_found_nothing(notifier)
        notifier.wake(wake)
        assert not notifier.nothing_new("a1")
        _looked_and_found_nothing(notifier)
        assert notifier.nothing_new("a1")


def test_a_wake_during_the_look_is_not_lost() -> None:
    # The look began before the work was committed, so it may have missed it.
    notifier = Notifier(recheck_seconds=60)
    mark = notifier.mark("a1")
    notifier.wake(Wake(anyone=True))
    notifier.found_nothing("a1", mark)
    assert not notifier.nothing_new("a1")


def test_an_old_look_is_not_trusted() -> None:
    # Work that wakes no one here (another replica, a retry whose backoff ended).
    notifier = Notifier(recheck_seconds=0)
    _looked_and_found_nothing(notifier)
    assert not notifier.nothing_new("a1")


def _claimed(agent: str) -> Claimed:
    now = datetime.now(UTC)
    execution = Execution(
        id=1,
        run_id=1,
        task_id=1,
        ownership=Ownership.ANYONE,
        agent=agent,
        attempt=1,
        retry_of=None,
        status=ExecutionStatus.RUNNING,
        not_before=now,
        lease_expires_at=now,
        plugin_sha256="a" * 64,
        result=None,
        error=None,
        queued_at=now,
        started_at=now,
        finished_at=None,
    )
    return Claimed(
        execution=execution,
        plugin="demo",
        action="echo",
        args=[],
        kwargs={},
        timeout_seconds=None,
        plugin_sha256="a" * 64,
    )


def _hand_over(notifier: Notifier, waiter: Waiter, claimed: Claimed) -> None:
    with notifier.handing(lease_seconds=30.0) as handoff:
        assert handoff.take(waiter.agent)
        handoff.handed = [claimed]


def test_work_handed_on_the_claims_own_loop_is_there_when_the_transaction_ends() -> None:
    # A create on the event loop: the claim can answer before the create does (the claim's
    # answer is the dispatch latency; the creator waits one turn of the loop).
    async def scenario() -> None:
        notifier = Notifier()
        claimed = _claimed("a1")
        with notifier.listen("a1", slots=1) as waiter:
            notifier.wait_open(waiter)
            _hand_over(notifier, waiter, claimed)
            assert waiter.woken.is_set()
            assert notifier.stop_waiting(waiter) == ([claimed], 0)

    asyncio.run(scenario())


def test_work_handed_from_a_worker_thread_reaches_the_claim_through_its_loop() -> None:
    async def scenario() -> None:
        notifier = Notifier()
        claimed = _claimed("a1")
        with notifier.listen("a1", slots=1) as waiter:
            notifier.wait_open(waiter)
            await asyncio.to_thread(_hand_over, notifier, waiter, claimed)
            await asyncio.wait_for(waiter.woken.wait(), 5)
            assert notifier.stop_waiting(waiter) == ([claimed], 0)

    asyncio.run(scenario())
