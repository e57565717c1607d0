"""Wakes agents' long-poll claims the moment there is work or a cancellation for them, and hands
new executions straight to claims that are waiting."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from octopus.store.base import Claimed, Wake

RECHECK_SECONDS = 0.5
"""How often a claim looks at the store even without a wake-up (other replicas, retries
whose backoff ended)."""

Mark = tuple[int, int]
"""Wake-ups so far: for any agent, and for one agent by name."""


@dataclass(eq=False, slots=True)
class Waiter:
    """One long-poll claim of ``agent`` for up to ``slots`` executions.

    While it waits it is *open*: a creating transaction may reserve one of its free slots,
    lease the new execution to the agent in that same transaction, and hand it over after the
    commit, so the claim answers without a store pass of its own.
    """

    agent: str
    free: int
    loop: asyncio.AbstractEventLoop
    lead: float = 0.0
    """How long before an execution may start the agent accepts it (it waits itself)."""
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    open: bool = False
    gone: bool = False
    """The claim must neither take nor reserve anything more: its client hung up, or its agent
    handed work back (the slots it asked for are stale)."""
    reserved: int = 0
    handed: list[Claimed] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Taken:
    """The slots one transaction reserved of one waiting claim."""

    waiter: Waiter
    slots: int


class Handoff:
    """The slots one creating or firing transaction reserved, of one waiting claim per agent.

    A transaction asks for its n-th execution for an agent by number, so one that is retried
    reuses the slots its first attempt reserved and never takes one twice. Implements the
    store's ``Direct`` protocol. Made by ``Notifier.handing``, which settles it when its block
    ends: the transaction sets ``handed`` to what it leased once it committed.
    """

    def __init__(self, notifier: Notifier, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self._notifier = notifier
        self.taken: dict[str, _Taken] = {}
        self.handed: Sequence[Claimed] = ()

    def take(self, agent: str, nth: int = 1, ahead: float = 0.0) -> bool:
        """Reserve slots of an open claim of ``agent`` up to the ``nth`` execution this
        transaction leases to it, one that may start in ``ahead`` seconds; False when no claim
        is waiting, it has no slot left, or its agent does not take work that far ahead."""
        taken = self.taken.get(agent)
        if taken is None:
            waiter = self._notifier.reserve(agent, ahead)
            if waiter is None:
                return False
            taken = self.taken[agent] = _Taken(waiter, 1)
        if ahead > taken.waiter.lead:
            return False
        while taken.slots < nth:
            if not self._notifier.reserve_more(taken.waiter):
                return False
            taken.slots += 1
        return True


class Notifier:
    """Per-agent wake-up events, set by whoever queues work and awaited by claims.

    It lives in one server process; a claim also re-checks the store every few hundred
    milliseconds, so work from another replica or a retry whose backoff ended is not missed.
    Creating transactions run in worker threads, so what they touch is guarded by a lock.
    """

    def __init__(self, *, recheck_seconds: float = RECHECK_SECONDS) -> None:
        """``recheck_seconds``: how long a claim may go without looking at the store itself."""
        self._waiters: dict[str, set[Waiter]] = defaultdict(set)
        self._lock = threading.Lock()
        self._recheck_seconds = recheck_seconds
        self._wakes_for_anyone = 0
        self._wakes_for: dict[str, int] = defaultdict(int)
        self._found_nothing: dict[str, tuple[Mark, float]] = {}
        self.closing = False

    def close(self) -> None:
        """Shutting down: wake every waiting claim so it answers now and the server can stop."""
        self.closing = True
        self.wake(Wake(anyone=True))

    def wake(self, wake: Wake) -> None:
        """Wake the named agents, or every waiting agent when any of them may take the work."""
        with self._lock:
            if wake.anyone:
                self._wakes_for_anyone += 1
            for name in wake.agents:
                self._wakes_for[name] += 1
        names = list(self._waiters) if wake.anyone else wake.agents
        for name in names:
            for waiter in list(self._waiters.get(name, ())):
                waiter.woken.set()

    def mark(self, agent: str) -> Mark:
        """Where the wake-ups for ``agent`` stand, taken before a claim looks at the store."""
        with self._lock:
            return self._mark_held(agent)

    def _mark_held(self, agent: str) -> Mark:
        # The caller holds ``_lock``.
        return (self._wakes_for_anyone, self._wakes_for.get(agent, 0))

    def found_nothing(self, agent: str, mark: Mark) -> None:
        """A look at the store that began at ``mark`` found nothing for ``agent``."""
        with self._lock:
            self._found_nothing[agent] = (mark, time.monotonic())

    def nothing_new(self, agent: str) -> bool:
        """Whether a claim of ``agent`` may skip its look at the store and wait at once: its
        last look found nothing, no wake-up for it came since that look began, and the look is
        recent enough (work that wakes no one here, from another replica or a retry whose
        backoff ended, is still found within ``recheck_seconds``)."""
        with self._lock:
            last = self._found_nothing.get(agent)
            if last is None:
                return False
            mark, at = last
            return mark == self._mark_held(agent) and time.monotonic() - at < self._recheck_seconds

    @contextmanager
    def listen(self, agent: str, slots: int = 0, lead: float = 0.0) -> Iterator[Waiter]:
        """A claim of ``agent`` for ``slots`` executions that may start within ``lead``
        seconds, registered for the ``with`` block.

        Register before looking for work, so a wake-up between the look and the wait is kept.
        """
        waiter = Waiter(agent=agent, free=slots, loop=asyncio.get_running_loop(), lead=lead)
        with self._lock:
            self._waiters[agent].add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                waiter.open = False
                waiting = self._waiters.get(agent)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[agent]

    def wait_open(self, waiter: Waiter) -> None:
        """The claim is about to wait: creating transactions may hand it work from now on."""
        with self._lock:
            waiter.open = waiter.free > 0 and not self.closing and not waiter.gone

    def stop_waiting(self, waiter: Waiter) -> tuple[list[Claimed], int]:
        """The claim woke: close it to new reservations; what was handed and how many
        reservations are still on their way (the claim must wait for those before answering)."""
        with self._lock:
            waiter.open = False
            handed, waiter.handed = waiter.handed, []
            return handed, waiter.reserved

    def leave(self, waiter: Waiter) -> None:
        """The claim's client hung up: close it for good and wake it, so it answers now
        instead of leasing work to a connection no one reads."""
        with self._lock:
            waiter.open = False
            waiter.gone = True
        waiter.woken.set()

    def answer_now(self, agent: str) -> None:
        """``agent`` handed back work it claimed ahead: its waiting claims answer now with what
        they hold, so it asks again for what it can take now instead of a stale claim taking
        the handed-back work right back."""
        with self._lock:
            waiters = list(self._waiters.get(agent, ()))
        for waiter in waiters:
            self.leave(waiter)

    @contextmanager
    def handing(self, lease_seconds: float) -> Iterator[Handoff]:
        """A reservation book for one creating transaction (in any thread). When the block
        ends, each reserving claim gets what was leased to its agent (``handoff.handed``), or
        its slot back when nothing was (the transaction failed, or chose another agent on a
        retry)."""
        handoff = Handoff(self, lease_seconds)
        try:
            yield handoff
        finally:
            self._settle(handoff)

    def reserve(self, agent: str, ahead: float = 0.0) -> Waiter | None:
        """Take a free slot of an open claim of ``agent`` that takes work ``ahead`` seconds
        before it may start, for a transaction (from any thread)."""
        with self._lock:
            for waiter in self._waiters.get(agent, ()):
                if waiter.open and waiter.free > 0 and waiter.lead >= ahead:
                    waiter.free -= 1
                    waiter.reserved += 1
                    return waiter
        return None

    def reserve_more(self, waiter: Waiter) -> bool:
        """Take one more free slot of ``waiter`` for a transaction that reserved one of it."""
        with self._lock:
            if waiter.open and waiter.free > 0:
                waiter.free -= 1
                return True
        return False

    def _settle(self, handoff: Handoff) -> None:
        for agent, taken in handoff.taken.items():
            mine = [claimed for claimed in handoff.handed if claimed.execution.agent == agent]
            if _running_loop() is taken.waiter.loop:
                self._deliver(taken, mine)
            else:
                taken.waiter.loop.call_soon_threadsafe(self._deliver, taken, mine)

    def _deliver(self, taken: _Taken, handed: list[Claimed]) -> None:
        waiter = taken.waiter
        with self._lock:
            waiter.reserved -= 1
            waiter.handed += handed
            waiter.free += taken.slots - len(handed)
        waiter.woken.set()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a worker thread
        return None
