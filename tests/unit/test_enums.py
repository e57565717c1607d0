"""Parsing of statuses and kinds: case-insensitive, legacy spellings, clear refusals."""

from __future__ import annotations

import pytest

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus, TaskStatus, TaskType


@pytest.mark.parametrize(
    ("enum", "raw", "expected"),
    [
        (TaskType, "Adhoc", TaskType.ADHOC),
        (TaskType, "SCHEDULED", TaskType.SCHEDULED),
        (TaskType, "Interval", TaskType.INTERVAL),
        (TaskType, " cron ", TaskType.CRON),
        (Ownership, "ALL", Ownership.ALL),
        (Ownership, "Anyone", Ownership.ANYONE),
        (Ownership, "Specific", Ownership.SPECIFIC),
        (RunStatus, "Created", RunStatus.PENDING),
        (RunStatus, "Active", RunStatus.RUNNING),
        (RunStatus, "Done", RunStatus.SUCCEEDED),
        (ExecutionStatus, "success", ExecutionStatus.SUCCEEDED),
        (ExecutionStatus, "completed", ExecutionStatus.SUCCEEDED),
        (ExecutionStatus, "failed", ExecutionStatus.FAILED),
        # A real value wins over a legacy alias: "active" is a task status of its own.
        (TaskStatus, "Active", TaskStatus.ACTIVE),
        (TaskStatus, "Done", TaskStatus.SUCCEEDED),
    ],
)
def test_parse_accepts_contract_and_legacy_spellings(
    enum: type, raw: str, expected: object
) -> None:
    assert enum.parse(raw) is expected  # type: ignore[attr-defined]


@pytest.mark.parametrize("raw", ["", "adhocc", "every", "0"])
def test_parse_refuses_unknown_values_listing_the_allowed_ones(raw: str) -> None:
    with pytest.raises(ValueError, match="adhoc, scheduled, interval, cron"):
        TaskType.parse(raw)


def test_values_are_exactly_the_contract_strings() -> None:
    assert [s.value for s in ExecutionStatus] == [
        "queued",
        "running",
        "succeeded",
        "failed",
        "timed_out",
        "cancelled",
        "lost",
    ]
    assert [s.value for s in RunStatus] == [
        "pending",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "skipped",
        "missed",
    ]
