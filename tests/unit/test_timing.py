"""The pure time core: fire times in zones across daylight saving, and late, missed, overlap."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise, product
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from octopus.core.enums import MissedPolicy, OverlapPolicy, TaskType
from octopus.core.models import TaskSpec
from octopus.core.timing import (
    OverlapDecision,
    Schedule,
    cron_problem,
    decide_overlap,
    due_fire_times,
    jitter_seconds_for,
    next_fire_time,
    plan_missed,
    schedule_of,
    timezone_problem,
    upcoming,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def utc(text: str) -> datetime:
    """``"2026-03-08 07:00"`` (or with seconds) as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def cron(expression: str, zone: str = "UTC", **fields: Any) -> Schedule:
    return Schedule(type=TaskType.CRON, cron=expression, timezone=zone, **fields)


def every(seconds: float, **fields: Any) -> Schedule:
    return Schedule(type=TaskType.INTERVAL, interval_seconds=seconds, **fields)


# --- cron in zones ------------------------------------------------------------------------------

NEXT_CRON_CASES = [
    # (zone, expression, after (UTC), expected (UTC)): why
    ("UTC", "*/5 * * * *", "2026-01-01 00:00", "2026-01-01 00:05"),  # strictly after
    ("UTC", "*/5 * * * *", "2026-01-01 00:04:59.999999", "2026-01-01 00:05"),
    ("UTC", "0 9 * * mon", "2026-01-01 00:00", "2026-01-05 09:00"),  # names; 1 Jan is Thursday
    ("UTC", "@daily", "2026-01-01 00:00", "2026-01-02 00:00"),
    ("UTC", "0 0 29 2 *", "2026-01-01 00:00", "2028-02-29 00:00"),  # leap day
    # America/New_York, spring forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z)
    ("America/New_York", "30 2 * * *", "2026-03-07 12:00", "2026-03-08 07:00"),  # gap: 03:00 EDT
    ("America/New_York", "30 2 * * *", "2026-03-08 07:00", "2026-03-09 06:30"),  # once only
    ("America/New_York", "30 1 * * *", "2026-03-07 12:00", "2026-03-08 06:30"),  # before the gap
    ("America/New_York", "30 3 * * *", "2026-03-07 12:00", "2026-03-08 07:30"),  # after the gap
    ("America/New_York", "0 2 8 3 *", "2026-01-01 00:00", "2026-03-08 07:00"),
    # America/New_York, fall back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z)
    ("America/New_York", "30 1 * * *", "2026-10-31 12:00", "2026-11-01 05:30"),  # first, EDT
    ("America/New_York", "30 1 * * *", "2026-11-01 05:30", "2026-11-02 06:30"),  # not again
    ("America/New_York", "30 1 * * *", "2026-11-01 06:00", "2026-11-02 06:30"),
    ("America/New_York", "0 * * * *", "2026-11-01 05:00", "2026-11-01 06:00"),  # rate: both
    ("America/New_York", "*/30 * * * *", "2026-11-01 05:45", "2026-11-01 06:00"),  # 01:00 EST
    ("America/New_York", "30 2 * * *", "2026-10-31 12:00", "2026-11-01 07:30"),
    # Europe/London: 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT
    ("Europe/London", "30 1 * * *", "2026-03-28 12:00", "2026-03-29 01:00"),  # gap: 02:00 BST
    ("Europe/London", "0 2 * * *", "2026-03-28 12:00", "2026-03-29 01:00"),
    ("Europe/London", "30 1 * * *", "2026-10-24 12:00", "2026-10-25 00:30"),  # first, BST
    ("Europe/London", "30 1 * * *", "2026-10-25 00:30", "2026-10-26 01:30"),
    ("Europe/London", "0 12 * * *", "2026-06-01 00:00", "2026-06-01 11:00"),  # summer
    # Asia/Kolkata: UTC+05:30 all year
    ("Asia/Kolkata", "0 9 * * *", "2026-03-08 00:00", "2026-03-08 03:30"),
    ("Asia/Kolkata", "0 0 * * *", "2026-03-08 00:00", "2026-03-08 18:30"),
    ("Asia/Kolkata", "30 2 * * *", "2026-11-01 00:00", "2026-11-01 21:00"),
    # America/Santiago: 2026-09-06 00:00 -04 -> 01:00 -03, midnight does not exist
    ("America/Santiago", "0 0 * * *", "2026-09-05 12:00", "2026-09-06 04:00"),  # 01:00 -03
    ("America/Santiago", "0 0 * * *", "2026-09-06 04:00", "2026-09-07 03:00"),
    ("America/Santiago", "0 0 * * sun", "2026-09-01 00:00", "2026-09-06 04:00"),
    # ... and 2026-04-05 00:00 -03 -> 2026-04-04 23:00 -04: 23:00-23:59 on the 4th repeat
    ("America/Santiago", "30 23 * * *", "2026-04-04 12:00", "2026-04-05 02:30"),  # first, -03
    ("America/Santiago", "30 23 * * *", "2026-04-05 02:30", "2026-04-06 03:30"),
    # America/Havana: 2026-03-08 00:00 CST -> 01:00 CDT, midnight does not exist
    ("America/Havana", "0 0 * * *", "2026-03-07 12:00", "2026-03-08 05:00"),  # 01:00 CDT
    ("America/Havana", "0 0 * * *", "2026-03-08 05:00", "2026-03-09 04:00"),
    # ... and 2026-11-01 01:00 CDT -> 00:00 CST: midnight occurs twice, fires once (CDT)
    ("America/Havana", "0 0 * * *", "2026-10-31 12:00", "2026-11-01 04:00"),
    ("America/Havana", "0 0 * * *", "2026-11-01 04:00", "2026-11-02 05:00"),
    # 6 fields: a leading seconds field
    ("UTC", "*/10 * * * * *", "2026-01-01 00:00:05", "2026-01-01 00:00:10"),
    ("UTC", "30 0 12 * * *", "2026-01-01 00:00", "2026-01-01 12:00:30"),
    ("America/New_York", "15 30 2 * * *", "2026-03-07 12:00", "2026-03-08 07:00"),
]


@pytest.mark.parametrize(("zone", "expression", "after", "expected"), NEXT_CRON_CASES)
def test_next_fire_time_of_cron_in_a_zone(
    zone: str, expression: str, after: str, expected: str
) -> None:
    found = next_fire_time(cron(expression, zone), utc(after), anchor=T0)
    assert found == utc(expected)
    assert found is not None and found.tzinfo is UTC


@pytest.mark.parametrize(
    ("zone", "day", "local_hours"),
    [
        ("America/New_York", "2026-03-08", [0, 1, *range(3, 24)]),  # 02:00 does not exist
        ("America/New_York", "2026-11-01", [0, 1, 1, *range(2, 24)]),  # 01:00 EDT, 01:00 EST
        ("Europe/London", "2026-03-29", [0, *range(2, 24)]),
        ("Europe/London", "2026-10-25", [0, 1, 1, *range(2, 24)]),
        ("America/Santiago", "2026-09-06", list(range(1, 24))),  # the day starts at 01:00
        ("America/Havana", "2026-03-08", list(range(1, 24))),
    ],
)
def test_hourly_cron_across_dst_fires_every_real_hour_without_duplicate_or_gap(
    zone: str, day: str, local_hours: list[int]
) -> None:
    times = upcoming(cron("0 * * * *", zone), utc(day) - timedelta(hours=15), 60, anchor=T0)
    assert all(later - earlier == timedelta(hours=1) for earlier, later in pairwise(times))
    local = [moment.astimezone(ZoneInfo(zone)) for moment in times]
    assert [moment.hour for moment in local if moment.date() == date.fromisoformat(day)] == (
        local_hours
    )


def test_a_repeated_wall_time_fires_once_on_the_fall_back_day() -> None:
    times = upcoming(cron("30 1 * * *", "America/New_York"), utc("2026-10-31 00:00"), 3, anchor=T0)
    assert times == [utc("2026-10-31 05:30"), utc("2026-11-01 05:30"), utc("2026-11-02 06:30")]


def test_a_missing_wall_time_range_collapses_into_one_firing() -> None:
    schedule = cron("*/15 2 8 3 *", "America/New_York", end_at=utc("2026-12-31 00:00"))
    assert upcoming(schedule, utc("2026-03-08 00:00"), 5, anchor=T0) == [utc("2026-03-08 07:00")]


def test_cron_fire_times_in_the_fall_back_hour_stay_sorted() -> None:
    times = upcoming(
        cron("*/30 * * * *", "America/New_York"), utc("2026-11-01 04:00"), 7, anchor=T0
    )
    expected = ["04:30", "05:00", "05:30", "06:00", "06:30", "07:00", "07:30"]
    assert times == [utc(f"2026-11-01 {hhmm}") for hhmm in expected]


def test_cron_respects_start_at_and_end_at() -> None:
    schedule = cron("0 * * * *", start_at=utc("2026-01-01 05:00"), end_at=utc("2026-01-01 07:00"))
    assert upcoming(schedule, T0, 10, anchor=T0) == [
        utc("2026-01-01 05:00"),
        utc("2026-01-01 06:00"),
        utc("2026-01-01 07:00"),
    ]
    assert next_fire_time(schedule, utc("2026-01-01 07:00"), anchor=T0) is None


# --- cron_problem -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    ["* * * * *", "0 9 * * mon-fri", "*/15 0-6,22-23 1 jan,jul *", "0 0 L * *", "0 0 * * 7",
     "0 0 * * mon#2", "0 0 29 2 *", "30 */2 * * * *", "@hourly", " 5  4 * * * "],
)  # fmt: skip
def test_cron_problem_accepts_valid_expressions(expression: str) -> None:
    assert cron_problem(expression) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with a leading "
             "seconds field, got 0"),
        ("* * *", "got 3"),
        ("* * * * * * *", "got 7"),
        ("* 25 * * *", "field 2 (hour): 25 is out of range 0-23"),
        ("60 * * * *", "field 1 (minute): 60 is out of range 0-59"),
        ("1-70 * * * *", "field 1 (minute): 70 is out of range 0-59"),
        ("* * 0 * *", "field 3 (day-of-month): 0 is out of range 1-31"),
        ("* * 32 * *", "field 3 (day-of-month): 32 is out of range 1-31"),
        ("* * * 13 *", "field 4 (month): 13 is out of range 1-12"),
        ("* * * * 8", "field 5 (day-of-week): 8 is out of range 0-7"),
        ("60 * * * * *", "field 1 (second): 60 is out of range 0-59"),
        ("0 60 * * * *", "field 2 (minute): 60 is out of range 0-59"),
        ("*/0 * * * *", "field 1 (minute): step '0' must be a positive whole number"),
        ("a * * * *", "field 1 (minute): 'a' is not a valid value"),
        ("* * * foo *", "field 4 (month): 'foo' is not a valid value"),
        ("H * * * *", "field 1 (minute): 'H' is not a valid value"),
        ("0 0 * * 1#6", "field 5 (day-of-week): '1#6' is not a valid value"),
        ("0 0 30 2 *", "never fires: no date matches its day and month fields"),
        ("@often", "unknown macro @often; use one of @yearly"),
    ],
)  # fmt: skip
def test_cron_problem_names_what_is_wrong(expression: str, message: str) -> None:
    problem = cron_problem(expression)
    assert problem is not None and message in problem


def test_a_schedule_with_a_bad_cron_or_zone_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cron '\* 25 \* \* \*': field 2 \(hour\)"):
        cron("* 25 * * *")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        cron("* * * * *", "Mars/Olympus")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("UTC", True),
        ("Asia/Kolkata", True),
        ("Nowhere/Town", False),
        ("", False),
        ("\U0001f600" * 64, False),
    ],
)
def test_timezone_problem(name: str, ok: bool) -> None:
    assert (timezone_problem(name) is None) is ok


# --- interval and scheduled ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "start_at", "after", "expected"),
    [
        (60, None, T0 - timedelta(days=1), T0),  # the anchor itself is the first fire time
        (60, None, T0, T0 + timedelta(seconds=60)),  # strictly after
        (60, None, T0 + timedelta(seconds=59.5), T0 + timedelta(seconds=60)),
        (60, None, T0 + timedelta(seconds=61), T0 + timedelta(seconds=120)),
        (0.5, None, T0 + timedelta(seconds=0.7), T0 + timedelta(seconds=1)),
        (0.1, None, T0 + timedelta(seconds=0.3), T0 + timedelta(seconds=0.4)),
        (60, utc("2026-02-01 00:00"), T0, utc("2026-02-01 00:00")),  # start_at is the anchor
        (60, utc("2026-02-01 00:00"), utc("2026-02-01 00:00:30"), utc("2026-02-01 00:01")),
    ],
)
def test_next_fire_time_of_interval_counts_from_its_anchor(
    seconds: float, start_at: datetime | None, after: datetime, expected: datetime
) -> None:
    assert next_fire_time(every(seconds, start_at=start_at), after, anchor=T0) == expected


def test_a_million_float_intervals_do_not_drift() -> None:
    later = T0 + timedelta(seconds=100_000)  # 0.1 s x 1,000,000
    assert next_fire_time(every(0.1), later - timedelta(microseconds=1), anchor=T0) == later
    assert next_fire_time(every(0.1), later, anchor=T0) == later + timedelta(seconds=0.1)


def test_interval_fire_times_never_pass_end_at() -> None:
    schedule = every(10, end_at=T0 + timedelta(seconds=25))
    assert upcoming(schedule, T0 - timedelta(seconds=1), 10, anchor=T0) == [
        T0 + timedelta(seconds=offset) for offset in (0, 10, 20)
    ]


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), 1e-7, None])
def test_an_unusable_interval_is_refused(seconds: float | None) -> None:
    with pytest.raises(ValueError, match="interval_seconds must be"):
        every(seconds)  # type: ignore[arg-type]


def test_scheduled_fires_once_at_run_at() -> None:
    schedule = Schedule(type=TaskType.SCHEDULED, run_at=utc("2026-05-01 12:00"))
    assert next_fire_time(schedule, T0, anchor=T0) == utc("2026-05-01 12:00")
    assert next_fire_time(schedule, utc("2026-05-01 12:00"), anchor=T0) is None
    assert upcoming(schedule, T0, 5, anchor=T0) == [utc("2026-05-01 12:00")]


def test_adhoc_never_fires_from_a_schedule() -> None:
    assert next_fire_time(Schedule(type=TaskType.ADHOC), T0, anchor=T0) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": TaskType.SCHEDULED}, "a scheduled task needs run_at"),
        ({"type": TaskType.SCHEDULED, "run_at": datetime(2026, 1, 1)}, "run_at must be"),
        ({"type": TaskType.INTERVAL, "interval_seconds": 1, "start_at": T0,
          "end_at": T0 - timedelta(1)}, "end_at is before start_at"),
    ],
)  # fmt: skip
def test_an_inconsistent_schedule_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule(**fields)


def test_an_aware_non_utc_datetime_is_normalised_to_utc() -> None:
    paris = datetime.fromisoformat("2026-05-01T14:00:00+02:00")
    schedule = Schedule(type=TaskType.SCHEDULED, run_at=paris)
    assert schedule.run_at == utc("2026-05-01 12:00") and schedule.run_at.tzinfo is UTC


@pytest.mark.parametrize("call", ["next", "upcoming", "due_after", "due_now", "anchor"])
def test_naive_datetimes_are_refused(call: str) -> None:
    naive, schedule = datetime(2026, 1, 1), every(60)
    calls = {
        "next": lambda: next_fire_time(schedule, naive, anchor=T0),
        "upcoming": lambda: upcoming(schedule, naive, 3, anchor=T0),
        "due_after": lambda: due_fire_times(schedule, after=naive, now=T0, anchor=T0, limit=3),
        "due_now": lambda: due_fire_times(schedule, after=T0, now=naive, anchor=T0, limit=3),
        "anchor": lambda: next_fire_time(schedule, T0, anchor=naive),
    }
    with pytest.raises(ValueError, match="must be timezone-aware"):
        calls[call]()


def test_schedule_of_takes_the_timing_fields_of_a_spec() -> None:
    spec = TaskSpec(
        name="n", plugin="p", action="a", type=TaskType.CRON, cron="0 9 * * *",
        timezone="Asia/Kolkata", start_at=T0, end_at=T0 + timedelta(days=9),
    )  # fmt: skip
    schedule = schedule_of(spec, end_at=spec.end_at)
    assert (schedule.type, schedule.cron, schedule.timezone) == (
        spec.type,
        spec.cron,
        spec.timezone,
    )
    assert (schedule.start_at, schedule.end_at) == (T0, T0 + timedelta(days=9))
    assert schedule_of(spec).end_at is None


# --- upcoming and due_fire_times -----------------------------------------------------------------


def test_upcoming_lists_the_next_fire_times_in_order() -> None:
    times = upcoming(cron("0 9 * * *", "Asia/Kolkata"), T0, 3, anchor=T0)
    assert times == [utc("2026-01-01 03:30"), utc("2026-01-02 03:30"), utc("2026-01-03 03:30")]
    assert upcoming(cron("0 9 * * *"), T0, 0, anchor=T0) == []


def test_due_fire_times_are_those_in_the_half_open_window() -> None:
    due = due_fire_times(every(60), after=T0, now=T0 + timedelta(minutes=3), anchor=T0, limit=10)
    assert due == [T0 + timedelta(minutes=minutes) for minutes in (1, 2, 3)]


@pytest.mark.parametrize("schedule", [every(1), cron("* * * * * *"), cron("*/5 * * * *")])
def test_due_fire_times_keep_the_newest_limit_after_a_long_outage(schedule: Schedule) -> None:
    now = T0 + timedelta(days=30)
    due = due_fire_times(schedule, after=T0, now=now, anchor=T0, limit=4)
    step = next_fire_time(schedule, T0, anchor=T0) - T0  # type: ignore[operator]
    assert due == [now - step * back for back in (3, 2, 1, 0)]


@pytest.mark.parametrize(
    ("after", "now", "limit"), [(T0, T0, 5), (T0 + timedelta(1), T0, 5), (T0, T0 + timedelta(1), 0)]
)
def test_due_fire_times_are_empty_for_an_empty_window_or_no_limit(
    after: datetime, now: datetime, limit: int
) -> None:
    assert due_fire_times(every(1), after=after, now=now, anchor=T0, limit=limit) == []


def test_due_fire_times_of_a_sparse_cron_reach_back_to_after() -> None:
    due = due_fire_times(
        cron("0 0 1 1 *"), after=T0, now=utc("2036-06-01 00:00"), anchor=T0, limit=3
    )
    assert due == [utc(f"{year}-01-01 00:00") for year in (2034, 2035, 2036)]
    short = due_fire_times(
        cron("0 0 1 1 *"), after=T0, now=utc("2028-06-01 00:00"), anchor=T0, limit=9
    )
    assert short == [utc("2027-01-01 00:00"), utc("2028-01-01 00:00")]


def test_due_fire_times_stop_at_end_at() -> None:
    schedule = every(60, end_at=T0 + timedelta(minutes=2))
    due = due_fire_times(schedule, after=T0, now=T0 + timedelta(hours=1), anchor=T0, limit=10)
    assert due == [T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]


# --- plan_missed --------------------------------------------------------------------------------

NOW = utc("2026-01-01 12:00")
MISSED = [NOW - timedelta(minutes=minutes) for minutes in (40, 30, 20, 10)]
LATE = [NOW - timedelta(seconds=1)]


@pytest.mark.parametrize(
    ("policy", "run_all_limit", "to_fire", "to_miss"),
    [
        (MissedPolicy.RUN_ONCE, 9, MISSED[-1:] + LATE, MISSED[:-1]),
        (MissedPolicy.SKIP, 9, LATE, MISSED),
        (MissedPolicy.RUN_ALL, 9, MISSED + LATE, []),
        (MissedPolicy.RUN_ALL, 2, MISSED[-2:] + LATE, MISSED[:-2]),
        (MissedPolicy.RUN_ALL, 0, LATE, MISSED),
    ],
)
def test_plan_missed_per_policy(
    policy: MissedPolicy, run_all_limit: int, to_fire: list[datetime], to_miss: list[datetime]
) -> None:
    plan = plan_missed(MISSED + LATE, policy, now=NOW, grace_seconds=5, run_all_limit=run_all_limit)
    assert plan == (to_fire, to_miss)


@pytest.mark.parametrize("policy", list(MissedPolicy))
def test_a_fire_time_within_the_grace_window_always_fires(policy: MissedPolicy) -> None:
    on_the_edge = [NOW - timedelta(seconds=5), NOW]
    plan = plan_missed(on_the_edge, policy, now=NOW, grace_seconds=5, run_all_limit=0)
    assert plan == (on_the_edge, [])


@pytest.mark.parametrize("policy", list(MissedPolicy))
def test_a_fire_time_just_past_the_grace_window_is_missed(policy: MissedPolicy) -> None:
    old = [NOW - timedelta(seconds=5, microseconds=1)]
    to_fire, to_miss = plan_missed(old, policy, now=NOW, grace_seconds=5, run_all_limit=5)
    assert (to_fire, to_miss) == (([], old) if policy is MissedPolicy.SKIP else (old, []))


def test_plan_missed_of_nothing_is_nothing_and_refuses_naive_times() -> None:
    assert plan_missed([], MissedPolicy.RUN_ALL, now=NOW, grace_seconds=1, run_all_limit=3) == (
        [],
        [],
    )
    with pytest.raises(ValueError, match="must be timezone-aware"):
        plan_missed([datetime(2026, 1, 1)], MissedPolicy.SKIP, now=NOW, grace_seconds=1,
                    run_all_limit=3)  # fmt: skip


# --- jitter -------------------------------------------------------------------------------------


def test_jitter_is_deterministic_and_within_the_window() -> None:
    offsets = [jitter_seconds_for(task_id, NOW, 30.0) for task_id in range(1, 2001)]
    assert offsets == [jitter_seconds_for(task_id, NOW, 30.0) for task_id in range(1, 2001)]
    assert all(0 <= offset < 30.0 for offset in offsets)
    deciles = {int(offset // 3) for offset in offsets}
    assert deciles == set(range(10))  # spread over the whole window


def test_jitter_depends_on_the_instant_not_its_spelling() -> None:
    same = datetime.fromisoformat("2026-01-01T13:00:00+01:00")
    assert jitter_seconds_for(7, same, 60) == jitter_seconds_for(7, NOW, 60)
    assert jitter_seconds_for(7, NOW + timedelta(minutes=1), 60) != jitter_seconds_for(7, NOW, 60)


def test_no_jitter_window_means_no_offset() -> None:
    assert jitter_seconds_for(7, NOW, 0) == 0.0


@pytest.mark.parametrize(
    ("fire_time", "window", "message"),
    [(NOW, -1.0, "jitter_seconds must be"), (NOW, float("nan"), "jitter_seconds must be"),
     (datetime(2026, 1, 1), 5.0, "fire_time must be timezone-aware")],
)  # fmt: skip
def test_jitter_refuses_bad_input(fire_time: datetime, window: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jitter_seconds_for(7, fire_time, window)


# --- overlap ------------------------------------------------------------------------------------

OVERLAP = {
    OverlapPolicy.SKIP: OverlapDecision.SKIP,
    OverlapPolicy.ALLOW: OverlapDecision.FIRE,
    OverlapPolicy.CANCEL_PREVIOUS: OverlapDecision.CANCEL_PREVIOUS,
}


@pytest.mark.parametrize(
    ("policy", "previous_active", "already_queued"),
    list(product(OverlapPolicy, [False, True], [False, True])),
)
def test_decide_overlap_for_every_combination(
    policy: OverlapPolicy, previous_active: bool, already_queued: bool
) -> None:
    if not previous_active:
        expected = OverlapDecision.FIRE
    elif policy is OverlapPolicy.QUEUE_ONE:
        expected = OverlapDecision.SKIP if already_queued else OverlapDecision.QUEUE
    else:
        expected = OVERLAP[policy]
    decision = decide_overlap(
        policy, previous_active=previous_active, already_queued=already_queued
    )
    assert decision is expected


@pytest.mark.parametrize(
    ("enum", "raw", "member"),
    [
        (OverlapPolicy, "Queue_One", OverlapPolicy.QUEUE_ONE),
        (OverlapPolicy, "cancel-previous", OverlapPolicy.CANCEL_PREVIOUS),
        (MissedPolicy, "RUN_ALL", MissedPolicy.RUN_ALL),
        (MissedPolicy, "run-once", MissedPolicy.RUN_ONCE),
    ],
)
def test_policies_parse_case_insensitively(enum: Any, raw: str, member: object) -> None:
    assert enum.parse(raw) is member


@pytest.mark.parametrize(
    ("enum", "allowed"),
    [(OverlapPolicy, "skip, queue_one, allow, cancel_previous"),
     (MissedPolicy, "run_once, skip, run_all")],
)  # fmt: skip
def test_policies_refuse_unknown_values(enum: Any, allowed: str) -> None:
    with pytest.raises(ValueError, match=allowed):
        enum.parse("sometimes")
