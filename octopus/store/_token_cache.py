"""Agent tokens remembered in memory, so an agent's request costs no database read to authenticate.

Every agent request (heartbeat, claim, report) looked its token up in the database: a read
transaction and a thread hop each time. The cache keeps token hash to agent; a revocation
through the same store forgets the agent's entries at once. A look-up that raced with a
revocation is not remembered (the generation counter), so a revoked token never comes back.
Other server replicas (PostgreSQL) revoke behind this process's back: entries then expire after
``ttl_seconds``.
"""

from __future__ import annotations

import threading
import time

from octopus.core.models import Agent

MAX_ENTRIES = 100_000
"""Beyond this many tokens the cache starts afresh (a bound, not a policy)."""


class TokenCache:
    """Token hash to agent, with immediate forgetting on revocation."""

    def __init__(self, ttl_seconds: float | None = None) -> None:
        """Args:
        ttl_seconds: How long an entry is trusted; None for as long as the process lives
            (right when this process is the only one that can revoke, as with SQLite).
        """
        self._ttl_seconds = ttl_seconds
        self._entries: dict[str, tuple[Agent, float]] = {}
        self._lock = threading.Lock()
        self.generation = 0
        """Bumped by every ``forget``; pass the value read before a look-up to ``remember``."""

    def get(self, token_hash: str) -> Agent | None:
        """The remembered agent for this hash, or None (unknown, expired or forgotten)."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        agent, stored_at = entry
        if self._ttl_seconds is not None and time.monotonic() - stored_at > self._ttl_seconds:
            return None
        return agent

    def remember(self, token_hash: str, agent: Agent, *, generation: int) -> None:
        """Keep ``agent`` for this hash, unless a ``forget`` happened since ``generation``."""
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[token_hash] = (agent, time.monotonic())

    def forget(self, name: str) -> None:
        """Drop every entry of agent ``name`` (its token was revoked or replaced)."""
        with self._lock:
            self.generation += 1
            stale = [key for key, (agent, _) in self._entries.items() if agent.name == name]
            for key in stale:
                del self._entries[key]
