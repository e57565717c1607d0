"""When a finished execution is tried again, where, and after how long."""

from __future__ import annotations

from dataclasses import dataclass

from octopus.core.enums import ExecutionStatus, OnLost, Ownership

MAX_BACKOFF_SECONDS = 300.0
LOST_REQUEUE_LIMIT = 3
"""How many times an ``anyone`` run is moved to another agent after lost leases."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPlan:
    """A retry to queue: after ``delay_seconds``, on ``agent`` (None lets any agent take it)."""

    delay_seconds: float
    agent: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptHistory:
    """What a retry decision needs to know about the attempts so far."""

    attempt: int
    failures: int
    lost: int


def plan_retry(
    *,
    outcome: ExecutionStatus,
    ownership: Ownership,
    agent: str | None,
    history: AttemptHistory,
    max_retries: int,
    backoff_seconds: float,
    on_lost: OnLost,
) -> RetryPlan | None:
    """Decide whether a finished attempt is retried.

    ``failed`` and ``timed_out`` are retried while ``history.failures <= max_retries``, with
    exponential backoff. A ``lost`` ``anyone`` attempt moves to another agent at once (up to
    ``LOST_REQUEUE_LIMIT`` times) unless the task says ``on_lost: fail``; a lost ``all`` or
    ``specific`` attempt never moves and counts as a failure on its own agent.
    """
    if outcome in (ExecutionStatus.SUCCEEDED, ExecutionStatus.CANCELLED):
        return None
    movable = ownership is Ownership.ANYONE
    if outcome is ExecutionStatus.LOST and movable:
        if on_lost is OnLost.FAIL or history.lost > LOST_REQUEUE_LIMIT:
            return None
        return RetryPlan(delay_seconds=0.0, agent=None)
    if history.failures > max_retries:
        return None
    delay = min(backoff_seconds * 2 ** (history.failures - 1), MAX_BACKOFF_SECONDS)
    return RetryPlan(delay_seconds=delay, agent=None if movable else agent)
