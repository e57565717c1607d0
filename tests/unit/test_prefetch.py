"""The claim-ahead rule: executions held beyond the workers, from recent worker durations."""

from __future__ import annotations

import pytest

from octopus.agent.prefetch import WINDOW, Prefetch


def test_nothing_is_held_ahead_before_any_duration_is_known() -> None:
    assert Prefetch(concurrency=2, maximum=64).allowed == 0


@pytest.mark.parametrize(
    ("mean_seconds", "expected"),
    [
        (0.001, 64),  # 500 per worker, capped by the maximum
        (0.05, 20),  # 10 per worker
        (0.2, 4),  # 2 per worker
        (0.3, 2),  # 1 per worker
    ],
)
def test_quick_executions_are_held_ahead_half_a_second_per_worker(
    mean_seconds: float, expected: int
) -> None:
    prefetch = Prefetch(concurrency=2, maximum=64)
    for _ in range(5):
        prefetch.record(mean_seconds)
    assert prefetch.allowed == expected


@pytest.mark.parametrize("mean_seconds", [0.5, 2.0, 600.0])
def test_slow_executions_are_not_held_ahead(mean_seconds: float) -> None:
    prefetch = Prefetch(concurrency=4, maximum=64)
    prefetch.record(mean_seconds)
    assert prefetch.allowed == 0


def test_one_long_execution_among_quick_ones_stops_claim_ahead() -> None:
    prefetch = Prefetch(concurrency=2, maximum=64)
    for _ in range(WINDOW - 1):
        prefetch.record(0.001)
    prefetch.record(30.0)
    assert prefetch.allowed == 0


def test_only_the_last_window_counts() -> None:
    prefetch = Prefetch(concurrency=1, maximum=64)
    prefetch.record(30.0)
    for _ in range(WINDOW):
        prefetch.record(0.1)
    assert prefetch.allowed == 5


def test_a_maximum_of_zero_disables_claim_ahead() -> None:
    prefetch = Prefetch(concurrency=2, maximum=0)
    prefetch.record(0.001)
    assert prefetch.allowed == 0


def test_a_zero_duration_does_not_divide_by_zero() -> None:
    prefetch = Prefetch(concurrency=2, maximum=64)
    prefetch.record(0.0)
    prefetch.record(-1.0)  # a clock step backwards counts as zero
    assert prefetch.allowed == 64
