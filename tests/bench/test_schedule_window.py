"""The schedule-lag scenario counts only runs fired in its steady window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from octopus.bench.schedule import _fired_in, _lags

WINDOW = (1_000.0, 1_005.0)


def _run(fired: float, started: Any, status: str = "succeeded") -> dict[str, Any]:
    fire_time = datetime.fromtimestamp(fired, UTC).isoformat()
    return {"fire_time": fire_time, "executions": [{"status": status, "result": started}]}


def test_runs_fired_inside_the_window_give_their_lateness_in_ms() -> None:
    runs = [_run(1_000.0, 1_000.010), _run(1_004.5, 1_004.75)]
    assert [round(lag, 3) for lag in _lags(_fired_in(runs, WINDOW))] == [10.0, 250.0]


def test_runs_fired_while_creating_or_cancelling_are_left_out() -> None:
    before, at_end, after = _run(999.9, 1_000.0), _run(1_005.0, 1_005.1), _run(1_006.0, 1_006.1)
    assert _lags(_fired_in([before, at_end, after], WINDOW)) == []


def test_executions_that_did_not_succeed_or_report_no_start_are_left_out() -> None:
    runs = [_run(1_001.0, None, status="failed"), _run(1_002.0, "not a time")]
    assert _lags(_fired_in(runs, WINDOW)) == []
