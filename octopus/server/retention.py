"""The retention loop: prunes finished history older than ``OCTOPUS_RETENTION_DAYS`` in small
batches, each its own short transaction, so dispatch never waits long behind it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from octopus.core.audit import HISTORY_SUBJECT, SERVER, AuditAction, AuditNote
from octopus.store.base import Pruned, Store

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Rows deleted per transaction: tasks and runs, and the executions (with logs) they hold."""
MAX_BATCHES_PER_TICK = 200
"""A pass stops after this many batches; the next pass goes on where it stopped."""
INTERVAL_SECONDS = 600.0
"""How often the server prunes (and once at start)."""


class Retention:
    """Prunes history older than ``days`` (0: none by age) and, with ``max_runs_per_task``,
    the finished runs of a repeating task beyond its newest ones; ``tick(now)`` is one pass."""

    def __init__(
        self,
        store: Store,
        *,
        days: int,
        max_runs_per_task: int | None = None,
        batch_size: int = BATCH_SIZE,
        max_batches: int = MAX_BATCHES_PER_TICK,
    ) -> None:
        self._store = store
        self._days = days
        self._keep_runs = max_runs_per_task
        self._batch_size = batch_size
        self._max_batches = max_batches

    def tick(self, now: datetime) -> Pruned:
        """Prune batch by batch until one deletes nothing (or the pass's budget is spent); log
        and audit what went, if anything."""
        before = now - timedelta(days=self._days) if self._days > 0 else None
        if before is None and self._keep_runs is None:
            return Pruned()
        total = Pruned()
        for _ in range(self._max_batches):
            batch = self._store.prune_history(
                before=before, batch_size=self._batch_size, keep_runs=self._keep_runs
            )
            total += batch
            if not (batch.tasks or batch.runs):
                break
        if total.runs or total.tasks:
            self._report(total, before, now)
        return total

    def _report(self, total: Pruned, before: datetime | None, now: datetime) -> None:
        logger.info(
            "Pruned finished history (before %s, keeping %s runs per task): "
            "%s tasks, %s runs, %s executions",
            before.isoformat(timespec="seconds") if before else "any time",
            self._keep_runs or "all",
            total.tasks,
            total.runs,
            total.executions,
        )
        detail = {
            "before": before.isoformat() if before else None,
            "max_runs_per_task": self._keep_runs,
            "tasks": total.tasks,
            "runs": total.runs,
            "executions": total.executions,
        }
        note = AuditNote(
            actor=SERVER, action=AuditAction.HISTORY_PRUNED, subject=HISTORY_SUBJECT, detail=detail
        )
        self._store.record_audit(note, now=now)
