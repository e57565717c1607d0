"""Pure schedule arithmetic: when a task fires; what to do with late, missed, overlapping firings.

Every datetime in and out is timezone-aware; results are in UTC. Cron expressions are parsed and
iterated by croniter over *naive wall times in the task's zone*; this module turns each wall time
into instants itself, because croniter's own zone handling fires a repeated wall time twice:

- a wall time that does not exist (spring forward) fires once, at the first valid instant after
  it (the moment the clocks jump; several such wall times collapse into that one firing);
- a wall time that occurs twice (fall back) fires once, at its first occurrence, unless the
  expression's second, minute or hour field is a wildcard (``0 * * * *``, ``*/15 1 * * *``): such
  a rate fires in both occurrences, as Vixie cron does, so an hourly cron keeps firing every hour.

Interval tasks are fixed-rate, ``anchor + k * interval`` in whole microseconds, so they never drift.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from itertools import islice, takewhile
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from octopus.core.enums import MissedPolicy, OverlapPolicy, TaskType
from octopus.core.models import TaskSpec

_MICROSECOND = timedelta(microseconds=1)
_FIRST_DUE_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """When a task fires; validated on construction (ValueError), datetimes normalised to UTC."""

    type: TaskType
    run_at: datetime | None = None
    interval_seconds: float | None = None
    start_at: datetime | None = None
    cron: str | None = None
    timezone: str = "UTC"
    end_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("run_at", "start_at", "end_at"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _utc(value, name))
        _zone(self.timezone)
        if self.type is TaskType.SCHEDULED and self.run_at is None:
            raise ValueError("a scheduled task needs run_at")
        if self.type is TaskType.INTERVAL:
            _interval_micros(self.interval_seconds)
        if self.type is TaskType.CRON:
            _parse_cron(self.cron or "")
        if self.start_at and self.end_at and self.end_at < self.start_at:
            raise ValueError("end_at is before start_at")


def schedule_of(spec: TaskSpec, *, end_at: datetime | None = None) -> Schedule:
    """The schedule of a task spec.

    Args:
        spec: The task's validated spec.
        end_at: The last moment the schedule may fire; taken from the caller (usually
            ``spec.end_at``), so a preview may ignore it.

    Raises:
        ValueError: The spec's timing fields do not make a valid schedule.
    """
    return Schedule(
        type=spec.type,
        run_at=spec.run_at,
        interval_seconds=spec.interval_seconds,
        start_at=spec.start_at,
        cron=spec.cron,
        timezone=spec.timezone,
        end_at=end_at,
    )


def timezone_problem(name: str) -> str | None:
    """None when ``name`` is a known IANA time zone, else a short message saying so."""
    try:
        _zone(name)
    except ValueError as error:
        return str(error)
    return None


def next_fire_time(schedule: Schedule, after: datetime, *, anchor: datetime) -> datetime | None:
    """The first fire time strictly after ``after``, or None when the schedule has no more.

    Args:
        schedule: The task's schedule.
        after: An aware datetime; usually the last fire time, or now.
        anchor: Where an interval without ``start_at`` counts from (the task's creation time).

    Returns:
        An aware UTC datetime; None for adhoc, for scheduled whose ``run_at`` is not after
        ``after``, and once ``end_at`` is passed.

    Raises:
        ValueError: ``after`` or ``anchor`` is naive.
    """
    return next(_fire_times(schedule, after, anchor), None)


def upcoming(
    schedule: Schedule, after: datetime, count: int, *, anchor: datetime
) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after`` (fewer if the schedule ends)."""
    return list(islice(_fire_times(schedule, after, anchor), max(count, 0)))


def due_fire_times(
    schedule: Schedule, *, after: datetime, now: datetime, anchor: datetime, limit: int
) -> list[datetime]:
    """Fire times in ``(after, now]``, oldest first, at most ``limit`` (the newest if more).

    A long outage is cheap: fire times are enumerated only over a window before ``now`` that
    grows until it holds ``limit`` of them or reaches back to ``after``.
    """
    after, now = _utc(after, "after"), _utc(now, "now")
    if limit <= 0 or now <= after:
        return []
    window = _first_window(schedule, limit)
    while True:
        start = after if window >= now - after else now - window
        found = deque(takewhile(now.__ge__, _fire_times(schedule, start, anchor)), maxlen=limit)
        if len(found) == limit or start == after:
            return list(found)
        window *= 4


def plan_missed(
    due: Sequence[datetime],
    policy: MissedPolicy,
    *,
    now: datetime,
    grace_seconds: float,
    run_all_limit: int,
) -> tuple[list[datetime], list[datetime]]:
    """Split due fire times into ``(to_fire, to_record_missed)``, each oldest first.

    A fire time no older than ``grace_seconds`` is simply late and always fires. Older ones were
    missed: ``run_once`` fires only the newest of them (one catch-up) and records the rest;
    ``skip`` records them all; ``run_all`` fires the newest ``run_all_limit`` and records the rest.
    """
    now = _utc(now, "now")
    grace = timedelta(seconds=grace_seconds)
    ordered = sorted(_utc(moment, "due") for moment in due)
    missed = [moment for moment in ordered if now - moment > grace]
    late = ordered[len(missed) :]
    keep = {
        MissedPolicy.RUN_ONCE: 1,
        MissedPolicy.SKIP: 0,
        MissedPolicy.RUN_ALL: max(run_all_limit, 0),
    }[policy]
    split = max(len(missed) - keep, 0)
    return missed[split:] + late, missed[:split]


def jitter_seconds_for(task_id: int, fire_time: datetime, jitter_seconds: float) -> float:
    """A deterministic offset in ``[0, jitter_seconds)`` for one firing of one task.

    The same task and fire time always get the same offset (so replicas and restarts agree);
    different tasks and fire times spread evenly across the window. Zero when there is no window.

    Raises:
        ValueError: ``fire_time`` is naive, or ``jitter_seconds`` is negative or not finite.
    """
    if not math.isfinite(jitter_seconds) or jitter_seconds < 0:
        raise ValueError(f"jitter_seconds must be finite and >= 0, got {jitter_seconds}")
    key = f"{task_id}@{_utc(fire_time, 'fire_time').isoformat()}".encode()
    if jitter_seconds == 0:
        return 0.0
    digest = hashlib.blake2b(key, digest_size=8).digest()
    fraction = (int.from_bytes(digest, "big") >> 11) / 2**53  # 53 bits: exact, below 1
    return min(fraction * jitter_seconds, math.nextafter(jitter_seconds, 0.0))


class OverlapDecision(StrEnum):
    """What to do with a new firing of a task that may still have a run active."""

    FIRE = "fire"
    SKIP = "skip"
    QUEUE = "queue"
    CANCEL_PREVIOUS = "cancel_previous"


def decide_overlap(
    policy: OverlapPolicy, *, previous_active: bool, already_queued: bool
) -> OverlapDecision:
    """What to do with a new firing while an earlier run of the same task may still be active.

    Nothing active: fire. Otherwise ``skip`` skips, ``allow`` fires, ``cancel_previous`` cancels
    the active run and fires, ``queue_one`` queues unless one is already queued, then skips.
    """
    if not previous_active or policy is OverlapPolicy.ALLOW:
        return OverlapDecision.FIRE
    if policy is OverlapPolicy.CANCEL_PREVIOUS:
        return OverlapDecision.CANCEL_PREVIOUS
    if policy is OverlapPolicy.QUEUE_ONE and not already_queued:
        return OverlapDecision.QUEUE
    return OverlapDecision.SKIP


# --- fire times -------------------------------------------------------------------------------


def _fire_times(schedule: Schedule, after: datetime, anchor: datetime) -> Iterator[datetime]:
    """Fire times strictly after ``after``, ascending, none past ``end_at``."""
    times = _unbounded_times(schedule, _utc(after, "after"), _utc(anchor, "anchor"))
    end_at = schedule.end_at
    return times if end_at is None else takewhile(end_at.__ge__, times)


def _unbounded_times(schedule: Schedule, after: datetime, anchor: datetime) -> Iterator[datetime]:
    if schedule.type is TaskType.SCHEDULED:
        run_at = schedule.run_at
        return iter([run_at] if run_at is not None and run_at > after else [])
    if schedule.type is TaskType.INTERVAL:
        step = _interval_micros(schedule.interval_seconds)
        return _interval_times(schedule.start_at or anchor, step, after)
    if schedule.type is TaskType.CRON:
        if schedule.start_at is not None:
            after = max(after, schedule.start_at - _MICROSECOND)
        return _cron_times(_parse_cron(schedule.cron or ""), _zone(schedule.timezone), after)
    return iter([])


def _first_window(schedule: Schedule, limit: int) -> timedelta:
    """A window before now that likely holds ``limit`` fire times (exactly, for an interval)."""
    if schedule.type is TaskType.INTERVAL:
        return _MICROSECOND * (_interval_micros(schedule.interval_seconds) * limit)
    return _FIRST_DUE_WINDOW


def _interval_times(anchor: datetime, step_micros: int, after: datetime) -> Iterator[datetime]:
    """``anchor + k * step`` for k >= 0, strictly after ``after``; exact integer arithmetic."""
    k = max((after - anchor) // _MICROSECOND // step_micros + 1, 0)
    while True:
        yield anchor + _MICROSECOND * (k * step_micros)
        k += 1


def _interval_micros(interval_seconds: float | None) -> int:
    """The interval in whole microseconds (the resolution of datetime); ValueError if unusable."""
    if interval_seconds is None or not math.isfinite(interval_seconds) or interval_seconds <= 0:
        raise ValueError(f"interval_seconds must be a positive number, got {interval_seconds}")
    micros = round(interval_seconds * 1_000_000)
    if micros < 1:
        raise ValueError(f"interval_seconds must be at least 0.000001, got {interval_seconds}")
    return micros


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a key too long for a path
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name like Europe/Paris"
        ) from None


# --- cron in a zone ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cron:
    """A valid cron expression, normalised to single spaces, with how to iterate it."""

    expression: str
    with_seconds: bool
    repeats_in_fold: bool

    def walls_after(self, wall: datetime) -> croniter:
        return croniter(self.expression, wall, second_at_beginning=self.with_seconds)


@lru_cache(maxsize=1024)
def _parse_cron(expression: str) -> _Cron:
    problem = cron_problem(expression)
    if problem is not None:
        raise ValueError(f"cron {expression!r}: {problem}")
    fields = _split_cron(expression)
    time_of_day = fields[: len(fields) - 3]  # second (if any), minute, hour
    repeats = any(field.startswith("*") for field in time_of_day)
    return _Cron(" ".join(fields), len(fields) == 6, repeats)


@dataclass(frozen=True, slots=True)
class _Fold:
    """An hour (or so) of wall times that occur twice: ``[start, end)`` in naive wall time."""

    start: datetime
    end: datetime
    second_offset: timedelta  # the zone's offset during the second occurrence

    @classmethod
    def of(cls, wall: datetime, zone: ZoneInfo) -> _Fold | None:
        """The fold holding a naive wall time, or None when it occurs once (or not at all)."""
        early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if early >= late:
            return None
        start = _transition(early, late, zone).astimezone(zone).replace(tzinfo=None)
        return cls(start, start + (late - early), wall - late.replace(tzinfo=None))

    def instant(self, wall: datetime) -> datetime:
        """The second occurrence of a wall time in this fold, in UTC."""
        return (wall - self.second_offset).replace(tzinfo=UTC)


def _cron_times(cron: _Cron, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Cron fire times strictly after ``after``, strictly increasing, forever.

    Wall times come from croniter in wall order and each fires at its first (or only) instant,
    which is increasing. When the walk leaves a fold, a rate (see the module docstring) rewinds
    to the fold's start to fire the second occurrences, all of which lie between the two.
    """
    local = after.astimezone(zone)
    start = local.replace(tzinfo=None)
    fold = _Fold.of(start, zone) if cron.repeats_in_fold else None
    last = after
    if fold is not None and local.fold == 1:  # after is in the second occurrence: finish it
        last = yield from _second_occurrences(cron, fold, last)
        start, fold = fold.end - _MICROSECOND, None
    walls = cron.walls_after(start)
    while True:
        wall = walls.get_next(datetime)
        if fold is not None and wall >= fold.end:
            last = yield from _second_occurrences(cron, fold, last)
            fold = None
        if cron.repeats_in_fold and fold is None:
            fold = _Fold.of(wall, zone)
        last = yield from _emit(_first_instant(wall, zone), last)


def _second_occurrences(
    cron: _Cron, fold: _Fold, last: datetime
) -> Generator[datetime, None, datetime]:
    """Fire the fold's wall times again, at their second occurrence, after ``last``."""
    after_last = (last + fold.second_offset).replace(tzinfo=None)
    walls = cron.walls_after(max(fold.start - _MICROSECOND, after_last))
    while (wall := walls.get_next(datetime)) < fold.end:
        last = yield from _emit(fold.instant(wall), last)
    return last


def _emit(instant: datetime, last: datetime) -> Generator[datetime, None, datetime]:
    """Yield ``instant`` if it is after ``last`` (this drops collapsed gap times); the new last."""
    if instant > last:
        yield instant
        return instant
    return last


def _first_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """When a naive wall time first happens, in UTC (see the module docstring)."""
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early <= late:  # it exists: once, or twice with fold=0 the first occurrence
        return early
    return _transition(late, early, zone)  # in a gap: both readings straddle the jump


def _transition(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The instant in ``(low, high]`` where the zone's offset changes (tzdata: whole seconds)."""
    before = low.astimezone(zone).utcoffset()
    lo, hi = math.floor(low.timestamp()), math.ceil(high.timestamp())
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == before:
            lo = middle
        else:
            hi = middle
    return datetime.fromtimestamp(hi, UTC)


# --- cron validation --------------------------------------------------------------------------

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
_SECOND = ("second", 0, 59)
_NUMBER = re.compile(r"\d+")


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a usable cron expression, or None when it is.

    Valid: 5 fields (minute hour day-of-month month day-of-week), or 6 with a leading seconds
    field, in croniter's syntax (lists, ranges, steps, month and weekday names, ``L``, ``W``,
    ``#``), or a macro such as ``@daily``. It must also fire at some date (not ``0 0 30 2 *``).

    Returns:
        None, or a short message naming what is wrong, e.g.
        ``"field 2 (hour): 25 is out of range 0-23"``.
    """
    fields = _split_cron(expression)
    if fields and fields[0].startswith("@"):
        return f"unknown macro {fields[0]}; use one of {', '.join(_MACROS)}"
    if len(fields) not in (5, 6):
        return (
            "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with a "
            f"leading seconds field, got {len(fields)}"
        )
    specs = _FIELDS if len(fields) == 5 else (_SECOND, *_FIELDS)
    for index, spec in enumerate(specs):
        problem = _field_problem(fields, index, spec)
        if problem is not None:
            return f"field {index + 1} ({spec[0]}): {problem}"
    return _never_fires(fields)


def _split_cron(expression: str) -> list[str]:
    fields = expression.split()
    if len(fields) == 1 and fields[0].lower() in _MACROS:
        return _MACROS[fields[0].lower()].split()
    return fields


def _field_problem(fields: list[str], index: int, spec: tuple[str, int, int]) -> str | None:
    """What is wrong with one field, checked alone (every other field a wildcard)."""
    field, (_name, low, high) = fields[index], spec
    for part in field.split(","):
        values, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return f"step {step!r} must be a positive whole number"
        for number in _NUMBER.findall(values.partition("#")[0]):
            if not low <= int(number) <= high:
                return f"{number} is out of range {low}-{high}"
    alone = ["*"] * len(fields)
    alone[index] = field
    try:
        croniter(" ".join(alone), second_at_beginning=len(fields) == 6)
    except (CroniterError, ValueError, KeyError, IndexError):
        return f"{field!r} is not a valid value"
    return None


def _never_fires(fields: list[str]) -> str | None:
    """A message when the fields are valid alone but never match a date together."""
    start = datetime(2000, 1, 1)
    try:
        croniter(" ".join(fields), start, second_at_beginning=len(fields) == 6).get_next(datetime)
    except (CroniterError, ValueError, KeyError, IndexError) as error:
        if "find next date" in str(error):
            return "never fires: no date matches its day and month fields"
        return f"not a valid expression ({error})"
    return None
