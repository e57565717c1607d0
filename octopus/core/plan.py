"""When a task fires next: its first fire time, the next one after an edit, the next five.

Pure functions over ``core.timing`` that add what a stored task knows beyond its schedule:
when it was created (the anchor of a fixed-rate interval without ``start_at``) and how many
runs it already fired (``max_runs``).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from octopus.core.enums import TaskType
from octopus.core.models import TaskSpec
from octopus.core.timing import Schedule, next_fire_time, schedule_of, upcoming

UPCOMING_COUNT = 5


def schedule_for(spec: TaskSpec) -> Schedule:
    """The pure schedule of a task spec, its ``end_at`` included."""
    return schedule_of(spec, end_at=spec.end_at)


def anchor_of(spec: TaskSpec, created_at: datetime) -> datetime:
    """Where a fixed-rate interval counts from: ``start_at``, or when the task was created."""
    return spec.start_at or created_at


def exhausted(spec: TaskSpec, run_count: int) -> bool:
    """Whether a repeating task already fired its ``max_runs`` runs."""
    return spec.max_runs is not None and run_count >= spec.max_runs


def first_fire_time(spec: TaskSpec, now: datetime) -> datetime | None:
    """A new task's first fire time (None for adhoc, which fires at once).

    A scheduled task fires at ``run_at``, an interval task at ``start_at`` or now (a
    ``start_at`` already past: its next slot after now), a cron task at its next match.
    """
    if spec.type is TaskType.ADHOC:
        return None
    if spec.type is TaskType.SCHEDULED:
        return spec.run_at
    if spec.type is TaskType.INTERVAL and (spec.start_at is None or spec.start_at >= now):
        first = spec.start_at or now
        return first if spec.end_at is None or first <= spec.end_at else None
    return next_fire_time(schedule_for(spec), now, anchor=anchor_of(spec, now))


def next_after(
    spec: TaskSpec, *, created_at: datetime, run_count: int, after: datetime
) -> datetime | None:
    """The first fire time strictly after ``after``; None once ``end_at`` or ``max_runs`` ends
    the schedule (or for a one-shot task, whose only fire time is ``run_at``)."""
    if not spec.type.repeats:
        return spec.run_at if spec.type is TaskType.SCHEDULED else None
    if exhausted(spec, run_count):
        return None
    return next_fire_time(schedule_for(spec), after, anchor=anchor_of(spec, created_at))


def upcoming_times(
    spec: TaskSpec,
    *,
    created_at: datetime,
    run_count: int,
    next_run_at: datetime | None,
    count: int = UPCOMING_COUNT,
) -> list[datetime]:
    """The next ``count`` fire times from ``next_run_at`` on, in the task's zone."""
    if next_run_at is None:
        return []
    zone = ZoneInfo(spec.timezone)
    if not spec.type.repeats:
        return [next_run_at.astimezone(zone)]
    left = count if spec.max_runs is None else max(0, min(count, spec.max_runs - run_count))
    if left == 0:
        return []
    anchor = anchor_of(spec, created_at)
    later = upcoming(schedule_for(spec), next_run_at, left - 1, anchor=anchor) if left > 1 else []
    return [moment.astimezone(zone) for moment in [next_run_at, *later]]
