"""Runs add up their executions' latest attempts; tasks follow their one run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus, TaskStatus, TaskType
from octopus.core.models import Execution
from octopus.core.rollup import latest_attempts, roll_up, task_status_after

E = ExecutionStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_execution(
    id: int, status: ExecutionStatus, *, retry_of: int | None = None, started: bool = True
) -> Execution:
    return Execution(
        id=id,
        run_id=1,
        task_id=1,
        ownership=Ownership.ALL,
        agent=f"a{id}",
        attempt=1,
        retry_of=retry_of,
        status=status,
        not_before=T0,
        lease_expires_at=None,
        plugin_sha256=None,
        result=None,
        error=None,
        queued_at=T0,
        started_at=T0 if started else None,
        finished_at=None,
    )


def test_all_succeeded_is_succeeded_and_summarised() -> None:
    rollup = roll_up([make_execution(i, E.SUCCEEDED) for i in range(1, 4)])
    assert rollup.status is RunStatus.SUCCEEDED
    assert rollup.summary() == "3/3 succeeded"


def test_mixed_outcomes_fail_and_count_each_status() -> None:
    outcomes = [E.SUCCEEDED] * 37 + [E.FAILED] * 2 + [E.LOST]
    rollup = roll_up([make_execution(i, s) for i, s in enumerate(outcomes, 1)])
    assert rollup.status is RunStatus.FAILED
    assert rollup.summary() == "37/40 succeeded, 2 failed, 1 lost"


def test_a_retry_supersedes_the_attempt_it_retries() -> None:
    first, retry = make_execution(1, E.FAILED), make_execution(2, E.SUCCEEDED, retry_of=1)
    assert latest_attempts([first, retry]) == [retry]
    assert roll_up([first, retry]).status is RunStatus.SUCCEEDED


def test_queued_retry_after_a_started_attempt_keeps_the_run_running() -> None:
    first = make_execution(1, E.FAILED)
    retry = make_execution(2, E.QUEUED, retry_of=1, started=False)
    assert roll_up([first, retry]).status is RunStatus.RUNNING


def test_nothing_started_yet_is_pending() -> None:
    assert roll_up([make_execution(1, E.QUEUED, started=False)]).status is RunStatus.PENDING
    assert roll_up([]).status is RunStatus.PENDING


def test_any_cancelled_attempt_makes_the_run_cancelled() -> None:
    rollup = roll_up([make_execution(1, E.SUCCEEDED), make_execution(2, E.CANCELLED)])
    assert rollup.status is RunStatus.CANCELLED


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (RunStatus.PENDING, TaskStatus.PENDING),
        (RunStatus.RUNNING, TaskStatus.RUNNING),
        (RunStatus.SUCCEEDED, TaskStatus.SUCCEEDED),
        (RunStatus.FAILED, TaskStatus.FAILED),
        (RunStatus.CANCELLED, TaskStatus.CANCELLED),
        (RunStatus.SKIPPED, TaskStatus.FAILED),
    ],
)
def test_one_shot_task_follows_its_run(run: RunStatus, expected: TaskStatus) -> None:
    assert task_status_after(TaskType.ADHOC, TaskStatus.PENDING, run) is expected


def test_repeating_task_keeps_its_own_status() -> None:
    assert (
        task_status_after(TaskType.CRON, TaskStatus.ACTIVE, RunStatus.FAILED) is TaskStatus.ACTIVE
    )
