"""Properties of the time core: cron times increase, match and miss nothing; intervals are exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from croniter import croniter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from octopus.core.enums import MissedPolicy, TaskType
from octopus.core.timing import (
    Schedule,
    cron_problem,
    due_fire_times,
    next_fire_time,
    plan_missed,
    upcoming,
)

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "America/Santiago",  # changes at midnight
    "America/Havana",  # changes at midnight
    "Australia/Lord_Howe",  # a 30-minute shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "Asia/Kathmandu",  # +05:45, no DST
    "America/St_Johns",  # -03:30 / -02:30
]
PROPERTIES = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
SECOND = timedelta(seconds=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --- strategies ---------------------------------------------------------------------------------


def cron_field(low: int, high: int) -> st.SearchStrategy[str]:
    """One cron field over ``low..high``: wildcard, value, range, list, step, stepped range."""
    value = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.tuples(value, value).map(lambda pair: f"{min(pair)}-{max(pair)}"),
        st.lists(value, min_size=2, max_size=4, unique=True).map(
            lambda values: ",".join(map(str, sorted(values)))
        ),
        st.integers(1, high - low).map(lambda step: f"*/{step}"),
        st.tuples(value, st.integers(1, 10)).map(lambda pair: f"{pair[0]}-{high}/{pair[1]}"),
    )


@st.composite
def cron_expressions(draw: st.DrawFn) -> str:
    fields = [
        draw(cron_field(0, 59)),
        draw(cron_field(0, 23)),
        draw(cron_field(1, 31)),
        draw(cron_field(1, 12)),
        draw(cron_field(0, 7)),
    ]
    if draw(st.booleans()):
        fields.insert(0, draw(cron_field(0, 59)))
    expression = " ".join(fields)
    assume(cron_problem(expression) is None)  # e.g. "0 0 30 2 *" never fires
    return expression


@cache
def transitions(zone_name: str) -> list[datetime]:
    """The zone's offset changes in 2026 (UTC, to the second)."""
    zone, found = ZoneInfo(zone_name), []
    for day in range(365):
        low, high = T0 + timedelta(days=day), T0 + timedelta(days=day + 1)
        if low.astimezone(zone).utcoffset() != high.astimezone(zone).utcoffset():
            while high - low > SECOND:
                middle = low + (high - low) / 2
                same = middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset()
                low, high = (middle, high) if same else (low, middle)
            found.append(high.replace(microsecond=0))
    return found


@st.composite
def instants_near_dst(draw: st.DrawFn, zone: str) -> datetime:
    """An aware UTC instant, often within seconds, minutes or hours of a DST change."""
    changes = transitions(zone)
    if changes and draw(st.booleans()):
        scale = draw(st.sampled_from([1, 30, 60, 900, 3600]))
        return draw(st.sampled_from(changes)) + SECOND * scale * draw(st.integers(-48, 48))
    moment = draw(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)))
    return moment.replace(tzinfo=UTC)


# --- an independent oracle ----------------------------------------------------------------------


def matches(expression: str, wall: datetime) -> bool:
    """Whether a naive wall time is one of the expression's times."""
    seconds = len(expression.split()) == 6
    found = croniter(expression, wall - timedelta(microseconds=1), second_at_beginning=seconds)
    return bool(found.get_next(datetime) == wall)


def wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def fires_for_a_gap(expression: str, instant: datetime, zone: ZoneInfo) -> bool:
    """Whether ``instant`` ends a gap (clocks jump forward) holding a wall time that matches."""
    before, after = wall(instant - timedelta(microseconds=1), zone), wall(instant, zone)
    if after - before <= timedelta(microseconds=1):
        return False
    seconds = len(expression.split()) == 6
    found = croniter(expression, before, second_at_beginning=seconds).get_next(datetime)
    return bool(found < after)


def occurrences(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """A wall time read before and after a change: equal if it exists once, in order if twice."""
    first = moment.replace(tzinfo=zone, fold=0).astimezone(UTC)
    return first, moment.replace(tzinfo=zone, fold=1).astimezone(UTC)


def is_rate(expression: str) -> bool:
    """Whether the second, minute or hour field is a wildcard: a rate fires in both occurrences."""
    fields = expression.split()
    return any(field.startswith("*") for field in fields[: len(fields) - 3])


# --- cron properties ----------------------------------------------------------------------------


@PROPERTIES
@given(data=st.data(), expression=cron_expressions(), zone_name=st.sampled_from(ZONES))
def test_cron_fire_times_increase_and_match_the_expression(
    data: st.DataObject, expression: str, zone_name: str
) -> None:
    zone, after = ZoneInfo(zone_name), data.draw(instants_near_dst(zone_name))
    schedule = Schedule(type=TaskType.CRON, cron=expression, timezone=zone_name)
    times = upcoming(schedule, after, 12, anchor=T0)
    assert len(times) == 12
    assert all(moment.tzinfo is UTC for moment in times)
    assert after < times[0] and all(a < b for a, b in pairwise(times))
    for moment in times:
        local = wall(moment, zone)
        assert matches(expression, local) or fires_for_a_gap(expression, moment, zone), local


@PROPERTIES
@given(data=st.data(), expression=cron_expressions(), zone_name=st.sampled_from(ZONES))
def test_cron_fire_times_miss_no_wall_time_and_repeat_only_rates(
    data: st.DataObject, expression: str, zone_name: str
) -> None:
    zone, after = ZoneInfo(zone_name), data.draw(instants_near_dst(zone_name))
    schedule = Schedule(type=TaskType.CRON, cron=expression, timezone=zone_name)
    times = upcoming(schedule, after, 12, anchor=T0)
    seconds = len(expression.split()) == 6
    walls = croniter(
        expression, wall(after, zone) - timedelta(hours=3), second_at_beginning=seconds
    )
    for _ in range(40):
        first, second = occurrences(walls.get_next(datetime), zone)
        if first > second:  # in a gap: the other test checks those
            continue
        if after < first <= times[-1]:
            assert first in times
        if first < second and after < second <= times[-1]:
            assert (second in times) is is_rate(expression)


@PROPERTIES
@given(
    data=st.data(),
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    zone_name=st.sampled_from(ZONES),
)
def test_a_daily_cron_fires_once_per_local_day(
    data: st.DataObject, minute: int, hour: int, zone_name: str
) -> None:
    zone, after = ZoneInfo(zone_name), data.draw(instants_near_dst(zone_name))
    schedule = Schedule(type=TaskType.CRON, cron=f"{minute} {hour} * * *", timezone=zone_name)
    days = [moment.astimezone(zone).date() for moment in upcoming(schedule, after, 10, anchor=T0)]
    assert all((b - a).days == 1 for a, b in pairwise(days))


@PROPERTIES
@given(expression=cron_expressions(), zone_name=st.sampled_from(["UTC", "Asia/Kolkata"]))
def test_without_dst_cron_fire_times_are_croniters_wall_times(
    expression: str, zone_name: str
) -> None:
    zone, after = ZoneInfo(zone_name), T0
    schedule = Schedule(type=TaskType.CRON, cron=expression, timezone=zone_name)
    seconds = len(expression.split()) == 6
    walls = croniter(expression, wall(after, zone), second_at_beginning=seconds)
    expected = [walls.get_next(datetime).replace(tzinfo=zone).astimezone(UTC) for _ in range(8)]
    assert upcoming(schedule, after, 8, anchor=T0) == expected


# --- interval, due, missed -----------------------------------------------------------------------

micros = st.integers(1, 10**11)
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)


@PROPERTIES
@given(step=micros, anchor=instants, after=instants)
def test_interval_fire_times_are_exact_multiples_of_the_interval_from_the_anchor(
    step: int, anchor: datetime, after: datetime
) -> None:
    schedule = Schedule(type=TaskType.INTERVAL, interval_seconds=step / 1_000_000)
    times = upcoming(schedule, after, 5, anchor=anchor)
    interval = timedelta(microseconds=step)
    assert times[0] > after and (times[0] == anchor or times[0] - interval <= after)
    for moment in times:
        assert moment >= anchor and (moment - anchor) % interval == timedelta(0)
    assert all(b - a == interval for a, b in pairwise(times))


@settings(PROPERTIES, max_examples=50)
@given(
    data=st.data(),
    expression_and_unit=st.sampled_from(
        [("* * * * * *", 1), ("*/7 * * * *", 60), ("0 */3 * * *", 900), ("15 2 * * *", 3600)]
    ),
    zone_name=st.sampled_from(ZONES),
    limit=st.integers(1, 20),
)
def test_due_fire_times_are_the_newest_of_every_fire_time_in_the_window(
    data: st.DataObject, expression_and_unit: tuple[str, int], zone_name: str, limit: int
) -> None:
    expression, unit = expression_and_unit  # the window spans up to 300 units: a few hundred fires
    after = data.draw(instants_near_dst(zone_name))
    now = after + SECOND * unit * data.draw(st.integers(0, 300))
    schedule = Schedule(type=TaskType.CRON, cron=expression, timezone=zone_name)
    every_one, moment = [], after
    while (found := next_fire_time(schedule, moment, anchor=T0)) is not None and found <= now:
        every_one.append(found)
        moment = found
    due = due_fire_times(schedule, after=after, now=now, anchor=T0, limit=limit)
    assert due == every_one[-limit:]


@PROPERTIES
@given(
    offsets=st.lists(st.integers(0, 10_000), max_size=30, unique=True),
    policy=st.sampled_from(list(MissedPolicy)),
    grace=st.integers(0, 100),
    run_all_limit=st.integers(0, 10),
)
def test_plan_missed_accounts_for_every_due_fire_time(
    offsets: list[int], policy: MissedPolicy, grace: int, run_all_limit: int
) -> None:
    due = sorted(T0 - SECOND * offset for offset in offsets)
    to_fire, to_miss = plan_missed(
        due, policy, now=T0, grace_seconds=grace, run_all_limit=run_all_limit
    )
    assert sorted(to_fire + to_miss) == due and not set(to_fire) & set(to_miss)
    assert all(T0 - moment > SECOND * grace for moment in to_miss)
    assert all(moment in to_fire for moment in due if T0 - moment <= SECOND * grace)
    assert not to_miss or not to_fire or max(to_miss) < min(to_fire)  # only the oldest are missed
