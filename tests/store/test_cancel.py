"""Cancelling tasks: queued work ends at once, running work is stopped by its agent."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus, TaskStatus
from octopus.core.models import AgentFacts, ExecutionError
from octopus.errors import Conflict, Fenced, InvalidTransition, NotFound
from octopus.store import SqlStore
from octopus.store.base import Claimed, Outcome, Wake
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent

Claim = Callable[..., list[Claimed]]
Adhoc = Callable[..., int]
pytestmark = pytest.mark.usefixtures("demo_plugin")


def test_cancel_ends_queued_executions_at_once(
    store: SqlStore, clock: FixedClock, adhoc: Adhoc
) -> None:
    task_id = adhoc(ownership=Ownership.SPECIFIC, target="away")
    task, wake = store.cancel_task(task_id, now=clock.now)
    assert task.status is TaskStatus.CANCELLED
    assert wake == Wake()
    [execution], _ = store.list_executions(task_id=task_id)
    assert (execution.status, execution.finished_at) == (ExecutionStatus.CANCELLED, clock.now)
    assert store.list_runs(task_id)[0].status is RunStatus.CANCELLED


def test_cancel_flags_running_executions_until_their_agent_reports(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc(max_retries=3)
    [claimed] = claim("a1")
    task, wake = store.cancel_task(task_id, now=clock.now)
    assert task.status is TaskStatus.CANCELLED
    assert wake == Wake(agents=frozenset({"a1"}))
    assert store.claim("a1", slots=0, now=clock.now, lease_seconds=30).cancel == [
        claimed.execution.id
    ]
    beat = store.record_heartbeat(
        "a1", facts=AgentFacts(), labels={}, draining=False, now=clock.now, lease_seconds=30
    )
    assert beat.cancel == [claimed.execution.id]
    assert store.list_runs(task_id)[0].status is RunStatus.RUNNING
    store.finish_execution(
        claimed.execution.id,
        agent="a1",
        outcome=Outcome(status=ExecutionStatus.CANCELLED),
        now=clock.now,
    )
    assert store.claim("a1", slots=0, now=clock.now, lease_seconds=30).cancel == []
    assert store.list_runs(task_id)[0].status is RunStatus.CANCELLED
    assert store.list_executions(task_id=task_id)[1] == 1  # a cancelled task is not retried
    assert store.get_task(task_id).status is TaskStatus.CANCELLED


def test_a_failure_after_cancel_is_not_retried(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc(max_retries=3)
    [claimed] = claim("a1")
    store.cancel_task(task_id, now=clock.now)
    failed = Outcome(status=ExecutionStatus.FAILED, error=ExecutionError(type="E", message="m"))
    store.finish_execution(claimed.execution.id, agent="a1", outcome=failed, now=clock.now)
    assert store.list_executions(task_id=task_id)[1] == 1
    assert store.get_task(task_id).status is TaskStatus.CANCELLED


def test_cancelled_queued_execution_cannot_be_claimed_or_reported(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc(ownership=Ownership.SPECIFIC, target="a1")
    store.cancel_task(task_id, now=clock.now)
    assert claim("a1") == []
    [execution], _ = store.list_executions(task_id=task_id)
    with pytest.raises(Fenced):
        store.finish_execution(
            execution.id,
            agent="a1",
            outcome=Outcome(status=ExecutionStatus.SUCCEEDED),
            now=clock.now,
        )


def test_cancel_of_a_finished_task_is_a_conflict(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc()
    [claimed] = claim("a1")
    store.finish_execution(
        claimed.execution.id,
        agent="a1",
        outcome=Outcome(status=ExecutionStatus.SUCCEEDED),
        now=clock.now,
    )
    with pytest.raises(InvalidTransition):
        store.cancel_task(task_id, now=clock.now)
    assert store.get_task(task_id).status is TaskStatus.SUCCEEDED


def test_cancel_twice_is_a_conflict(store: SqlStore, clock: FixedClock, adhoc: Adhoc) -> None:
    task_id = adhoc()
    store.cancel_task(task_id, now=clock.now)
    with pytest.raises(Conflict):
        store.cancel_task(task_id, now=clock.now)


def test_cancel_of_an_unknown_task_is_not_found(store: SqlStore, clock: FixedClock) -> None:
    with pytest.raises(NotFound):
        store.cancel_task(5, now=clock.now)
