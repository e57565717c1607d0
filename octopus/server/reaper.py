"""Turns silence into recorded outcomes: offline agents, lost executions, retries."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from starlette.concurrency import run_in_threadpool

from octopus.server.clock import utcnow
from octopus.server.notifier import Notifier
from octopus.store.base import Store, Sweep

logger = logging.getLogger(__name__)


class Reaper:
    """A loop whose pure step ``tick(now)`` is one ``Store.reap`` pass plus wake-ups."""

    def __init__(self, store: Store, notifier: Notifier, *, client_timeout: float) -> None:
        self._store = store
        self._notifier = notifier
        self._client_timeout = client_timeout

    def tick(self, now: datetime) -> Sweep:
        """One pass at ``now``; logs what changed."""
        sweep = self._store.reap(now=now, client_timeout=self._client_timeout)
        for name in sweep.offline:
            logger.warning("Agent %s went offline", name, extra={"agent": name})
        for execution in sweep.lost:
            logger.warning("Execution lost", extra={"execution": execution})
        return sweep

    async def run(self, interval: float) -> None:
        """Call ``tick`` every ``interval`` seconds until cancelled."""
        while True:
            try:
                sweep = await run_in_threadpool(self.tick, utcnow())
                self._notifier.wake(sweep.wake)
            except Exception:
                logger.exception("Reaper pass failed; trying again")
            await asyncio.sleep(interval)
