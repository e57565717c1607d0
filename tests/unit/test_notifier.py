"""When a claim may skip its look at the store: nothing woke its agent since its last empty
look, and that look is recent."""

from __future__ import annotations

from octopus.server.notifier import Notifier
from octopus.store.base import Wake


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
