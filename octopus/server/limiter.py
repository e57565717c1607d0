"""A per-client limit on failed attempts, shared by dashboard logins and agent enrollments."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class FailureLimiter:
    """At most ``attempts`` failures (dashboard logins, enrollments) per client address in any
    ``window_seconds``; a client past that is refused until its oldest failure ages out."""

    attempts: int = 5
    window_seconds: float = 60.0
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self.failures.get(client, deque())
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        if not times:
            # Forgetting quiet clients keeps memory bounded by the clients failing right now.
            self.failures.pop(client, None)
        return times

    def blocked(self, client: str, now: float | None = None) -> bool:
        """Whether ``client`` used up its failed attempts for now."""
        moment = now if now is not None else time.monotonic()
        return len(self._recent(client, moment)) >= self.attempts

    def failed(self, client: str, now: float | None = None) -> None:
        """Count a failure from ``client``."""
        moment = now if now is not None else time.monotonic()
        times = self._recent(client, moment)
        times.append(moment)
        self.failures[client] = times

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` may try again."""
        moment = now if now is not None else time.monotonic()
        times = self._recent(client, moment)
        return max(1, int(times[0] + self.window_seconds - moment) + 1) if times else 0
