"""Turns silence into recorded outcomes: offline agents, lost executions, retries."""

from __future__ import annotations

import logging
from datetime import datetime

from octopus.store.base import Store, Sweep

logger = logging.getLogger(__name__)


class Reaper:
    """The pure step of the reaper loop: ``tick(now)`` is one ``Store.reap`` pass."""

    def __init__(self, store: Store, *, client_timeout: float) -> None:
        self._store = store
        self._client_timeout = client_timeout

    def tick(self, now: datetime) -> Sweep:
        """One pass at ``now``; logs what changed and returns it (with whom to wake)."""
        sweep = self._store.reap(now=now, client_timeout=self._client_timeout)
        for name in sweep.offline:
            logger.warning("Agent %s went offline", name, extra={"agent": name})
        for execution in sweep.lost:
            logger.warning("Execution lost: its lease expired", extra={"execution": execution})
        return sweep
