"""Live updates: one loop per server polls the store's change marks and fans them out.

Browsers subscribe with Server-Sent Events; each event names what changed (``tasks``,
``executions``, ``agents``) and the page fetches its own fresh HTML for the parts that show it.
The loop runs only while someone listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from octopus.store.base import ChangeMarks, Store

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
QUEUE_SIZE = 16
TOPICS = ("tasks", "executions", "agents")


def changed_topics(old: ChangeMarks | None, new: ChangeMarks) -> list[str]:
    """The topics whose marks moved (none on the first look)."""
    if old is None:
        return []
    return [topic for topic in TOPICS if getattr(old, topic) != getattr(new, topic)]


class LiveHub:
    """Fans store changes out to every subscribed browser."""

    def __init__(self, store: Store, *, poll_seconds: float = POLL_SECONDS) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._queues: set[asyncio.Queue[str]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue of changed topics for the ``async with`` block; starts the loop if idle."""
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._run(), name="dashboard live changes")
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def publish(self, topics: list[str]) -> None:
        """Tell every subscriber that ``topics`` changed (a full queue drops the news)."""
        for queue in list(self._queues):
            for topic in topics:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(topic)

    async def _run(self) -> None:
        marks: ChangeMarks | None = None
        while self._queues:
            try:
                new = await asyncio.to_thread(self._store.change_marks)
            except Exception:
                logger.exception("Reading the dashboard change marks failed")
            else:
                self.publish(changed_topics(marks, new))
                marks = new
            await asyncio.sleep(self._poll_seconds)
