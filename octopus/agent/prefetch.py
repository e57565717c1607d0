"""Claim-ahead: how many executions an agent may hold beyond its workers, from recent durations."""

from __future__ import annotations

from collections import deque

WINDOW = 20
"""How many recent worker durations the rule looks at."""

HORIZON_SECONDS = 0.5
"""The most work, in seconds at the recent mean duration, held waiting for each worker."""


class Prefetch:
    """The claim-ahead rule: ``floor(0.5 s / mean duration)`` waiting executions per worker.

    The mean is over the worker durations of the last ``WINDOW`` executions. Nothing is held
    ahead before the first duration is known, and nothing once executions take 0.5 s or more
    on average: a long execution held behind another would wait while other agents idle,
    whereas a quick one waits less than the round trip of the claim it saves. The result is
    capped by ``maximum`` (0 disables claim-ahead).
    """

    def __init__(self, *, concurrency: int, maximum: int) -> None:
        """Hold at most ``maximum`` executions beyond ``concurrency`` workers."""
        self._concurrency = concurrency
        self._maximum = maximum
        self._durations: deque[float] = deque(maxlen=WINDOW)

    def record(self, seconds: float) -> None:
        """Remember how long one execution kept its worker."""
        self._durations.append(max(0.0, seconds))

    @property
    def allowed(self) -> int:
        """How many executions may wait for a worker now."""
        if self._maximum == 0 or not self._durations:
            return 0
        mean = sum(self._durations) / len(self._durations)
        if mean >= HORIZON_SECONDS:
            return 0
        # A mean of 0 (a coarse clock) would divide by zero; a microsecond bounds it. The
        # epsilon keeps a sum's rounding (20 x 0.1 s) from losing a whole execution.
        per_worker = int(HORIZON_SECONDS / max(mean, 1e-6) + 1e-9)
        return min(self._maximum, per_worker * self._concurrency)
