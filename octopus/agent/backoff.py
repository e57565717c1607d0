"""Exponential backoff with jitter, for retrying while the server is away."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays that double from ``base_seconds`` up to ``cap_seconds``, each jittered by +-25%."""

    def __init__(
        self,
        *,
        base_seconds: float = 0.5,
        cap_seconds: float = 10.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Start at the first delay; ``rng`` returns floats in [0, 1) (pass one in tests)."""
        self._base = base_seconds
        self._cap = cap_seconds
        self._rng = rng
        self.attempts = 0

    def next_delay(self) -> float:
        """Return the delay before the next attempt and count this attempt."""
        delay = min(self._cap, self._base * 2 ** min(self.attempts, 32))
        self.attempts += 1
        return float(delay * (0.75 + self._rng() / 2))

    def reset(self) -> None:
        """Start over after a success."""
        self.attempts = 0
