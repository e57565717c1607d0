"""Wakes agents' long-poll claims the moment there is work or a cancellation for them."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from octopus.store.base import Wake


class Notifier:
    """Per-agent wake-up events, set by whoever queues work and awaited by claims.

    It lives in one server process; a claim also re-checks the store every few hundred
    milliseconds, so work from another replica or a retry whose backoff ended is not missed.
    """

    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.closing = False

    def close(self) -> None:
        """Shutting down: wake every waiting claim so it answers now and the server can stop."""
        self.closing = True
        self.wake(Wake(anyone=True))

    def wake(self, wake: Wake) -> None:
        """Wake the named agents, or every waiting agent when any of them may take the work."""
        names = list(self._events) if wake.anyone else wake.agents
        for name in names:
            for event in self._events.get(name, ()):
                event.set()

    @contextmanager
    def listen(self, agent: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``agent`` is woken, registered for the ``with`` block.

        Register before looking for work, so a wake-up between the look and the wait is kept.
        """
        event = asyncio.Event()
        self._events[agent].add(event)
        try:
            yield event
        finally:
            waiting = self._events.get(agent)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._events[agent]
