"""Handing back executions claimed ahead and never started: queued again, fenced one by one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus, TaskStatus, TaskType
from octopus.core.models import TaskSpec
from octopus.store import SqlStore
from octopus.store.base import Claimed, Outcome, Wake
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent

Claim = Callable[..., list[Claimed]]
Adhoc = Callable[..., int]
pytestmark = pytest.mark.usefixtures("demo_plugin")


def test_a_released_execution_is_queued_again_with_its_run_and_task_pending(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc()
    [claimed] = claim("a1")
    assert store.get_task(task_id).status is TaskStatus.RUNNING
    clock.advance(2)
    [answer], wake = store.release_executions("a1", [claimed.execution.id], now=clock.now)
    assert (answer.status, answer.refusal) == (ExecutionStatus.QUEUED, None)
    assert wake == Wake(anyone=True)
    execution = store.get_execution(claimed.execution.id)
    assert (execution.status, execution.agent, execution.attempt) == (
        ExecutionStatus.QUEUED,
        None,
        claimed.execution.attempt,
    )
    assert (execution.started_at, execution.lease_expires_at) == (None, None)
    [run] = store.list_runs(task_id)
    assert (run.status, run.started_at) == (RunStatus.PENDING, None)
    task = store.get_task(task_id)
    assert (task.status, task.last_run_status) == (TaskStatus.PENDING, RunStatus.PENDING)
    assert store.list_executions(task_id=task_id)[1] == 1  # the same execution, no retry


def test_another_agent_takes_a_released_execution_and_finishes_it(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc()
    [claimed] = claim("a1")
    store.release_executions("a1", [claimed.execution.id], now=clock.now)
    add_agent("a2")
    [again] = claim("a2")
    assert (again.execution.id, again.execution.agent) == (claimed.execution.id, "a2")
    assert again.execution.attempt == claimed.execution.attempt
    store.finish_execution(
        again.execution.id,
        agent="a2",
        outcome=Outcome(status=ExecutionStatus.SUCCEEDED),
        now=clock.now,
    )
    assert store.get_task(task_id).status is TaskStatus.SUCCEEDED


def test_release_is_fenced_one_by_one(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    add_agent("a2")
    adhoc()
    adhoc()
    adhoc()
    mine = [c.execution.id for c in claim("a1", slots=2)]
    [theirs] = [c.execution.id for c in claim("a2")]
    store.finish_execution(
        mine[1], agent="a1", outcome=Outcome(status=ExecutionStatus.SUCCEEDED), now=clock.now
    )
    answers, _ = store.release_executions("a1", [theirs, mine[0], 999_999, mine[1]], now=clock.now)
    assert [(a.execution_id, a.status, a.refusal) for a in answers] == [
        (theirs, None, "fenced"),
        (mine[0], ExecutionStatus.QUEUED, None),
        (999_999, None, "not_found"),
        (mine[1], None, "fenced"),
    ]
    assert "not running on a1" in (answers[0].reason or "")
    assert store.get_execution(theirs).status is ExecutionStatus.RUNNING
    assert store.get_execution(mine[1]).status is ExecutionStatus.SUCCEEDED


def test_a_repeated_release_is_fenced_and_changes_nothing(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc()
    [claimed] = claim("a1")
    store.release_executions("a1", [claimed.execution.id], now=clock.now)
    [answer], wake = store.release_executions("a1", [claimed.execution.id], now=clock.now)
    assert (answer.status, answer.refusal) == (None, "fenced")
    assert wake == Wake()
    assert store.get_execution(claimed.execution.id).status is ExecutionStatus.QUEUED
    assert store.get_task(task_id).status is TaskStatus.PENDING


def test_an_assigned_execution_stays_with_its_agent(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    add_agent("a2")
    adhoc(ownership=Ownership.SPECIFIC, target="a1")
    [claimed] = claim("a1")
    _, wake = store.release_executions("a1", [claimed.execution.id], now=clock.now)
    assert wake == Wake(agents=frozenset({"a1"}))
    assert store.get_execution(claimed.execution.id).agent == "a1"
    assert claim("a2") == []
    assert [c.execution.id for c in claim("a1")] == [claimed.execution.id]


def test_a_run_with_a_started_execution_stays_running(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    add_agent("a2")
    task_id = adhoc(ownership=Ownership.ALL)
    [first] = claim("a1")
    [second] = claim("a2")
    store.finish_execution(
        first.execution.id,
        agent="a1",
        outcome=Outcome(status=ExecutionStatus.SUCCEEDED),
        now=clock.now,
    )
    store.release_executions("a2", [second.execution.id], now=clock.now)
    assert store.get_execution(second.execution.id).status is ExecutionStatus.QUEUED
    [run] = store.list_runs(task_id)
    assert run.status is RunStatus.RUNNING
    assert store.get_task(task_id).status is TaskStatus.RUNNING


def test_a_repeating_task_keeps_its_status(
    store: SqlStore,
    clock: FixedClock,
    add_agent: AddAgent,
    claim: Claim,
    make_spec: Callable[..., TaskSpec],
) -> None:
    add_agent("a1")
    task = store.create_task(
        make_spec(type=TaskType.INTERVAL, interval_seconds=60), now=clock.now
    ).task
    later = clock.now + timedelta(seconds=60)
    run, _ = store.fire_run(task.id, fire_time=clock.now, next_run_at=later, now=clock.now)
    assert run is not None
    [claimed] = claim("a1")
    assert store.get_task(task.id).last_run_status is RunStatus.RUNNING
    store.release_executions("a1", [claimed.execution.id], now=clock.now)
    current = store.get_task(task.id)
    assert (current.status, current.last_run_status) == (TaskStatus.ACTIVE, RunStatus.PENDING)
    assert store.list_runs(task.id)[0].status is RunStatus.PENDING


def test_one_marked_for_stopping_ends_cancelled(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc(max_retries=3)
    [claimed] = claim("a1")
    store.cancel_task(task_id, now=clock.now)
    [answer], _ = store.release_executions("a1", [claimed.execution.id], now=clock.now)
    assert answer.status is ExecutionStatus.CANCELLED
    execution = store.get_execution(claimed.execution.id)
    assert execution.status is ExecutionStatus.CANCELLED
    assert execution.error is not None and execution.error.type == "Cancelled"
    assert store.list_runs(task_id)[0].status is RunStatus.CANCELLED
    assert store.list_executions(task_id=task_id)[1] == 1  # not retried
