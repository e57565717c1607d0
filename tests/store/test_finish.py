"""Reporting outcomes: fencing, retries with backoff, and run and task roll-up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus, TaskStatus, TaskType
from octopus.core.models import ExecutionError
from octopus.errors import Fenced, InvalidTransition, NotFound
from octopus.store import SqlStore
from octopus.store.base import Claimed, Outcome, Wake
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent

Claim = Callable[..., list[Claimed]]
Adhoc = Callable[..., int]
pytestmark = pytest.mark.usefixtures("demo_plugin")

SUCCEEDED = Outcome(status=ExecutionStatus.SUCCEEDED, result={"ok": True})
FAILED = Outcome(status=ExecutionStatus.FAILED, error=ExecutionError(type="E", message="boom"))


def test_finish_records_the_outcome_and_settles_run_and_task(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc()
    [claimed] = claim("a1")
    started = clock.now
    clock.advance(3)
    outcome = Outcome(
        status=ExecutionStatus.SUCCEEDED,
        result=[1, "two"],
        log="line 1\nline 2\n",
        log_truncated=True,
        started_at=started + timedelta(seconds=1),
        finished_at=clock.now,
    )
    execution, wake = store.finish_execution(
        claimed.execution.id, agent="a1", outcome=outcome, now=clock.now
    )
    assert (execution.status, execution.result, execution.error) == (
        ExecutionStatus.SUCCEEDED,
        [1, "two"],
        None,
    )
    assert (execution.started_at, execution.finished_at) == (outcome.started_at, clock.now)
    assert execution.lease_expires_at is None
    assert wake == Wake()
    assert store.get_execution_log(execution.id) == ("line 1\nline 2\n", True)
    [run] = store.list_runs(task_id)
    assert (run.status, run.finished_at) == (RunStatus.SUCCEEDED, clock.now)
    assert run.reason == "1/1 succeeded"
    task = store.get_task(task_id)
    assert (task.status, task.last_run_status) == (TaskStatus.SUCCEEDED, RunStatus.SUCCEEDED)


def test_finish_by_another_agent_is_fenced(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    add_agent("a2")
    adhoc()
    [claimed] = claim("a1") or claim("a2")
    other = "a2" if claimed.execution.agent == "a1" else "a1"
    with pytest.raises(Fenced):
        store.finish_execution(claimed.execution.id, agent=other, outcome=SUCCEEDED, now=clock.now)
    assert store.get_execution(claimed.execution.id).status is ExecutionStatus.RUNNING


def test_finish_twice_is_fenced(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    adhoc()
    [claimed] = claim("a1")
    store.finish_execution(claimed.execution.id, agent="a1", outcome=SUCCEEDED, now=clock.now)
    with pytest.raises(Fenced):
        store.finish_execution(claimed.execution.id, agent="a1", outcome=FAILED, now=clock.now)
    assert store.get_execution(claimed.execution.id).status is ExecutionStatus.SUCCEEDED


def test_finish_of_a_queued_execution_is_fenced(
    store: SqlStore, clock: FixedClock, adhoc: Adhoc
) -> None:
    task_id = adhoc(ownership=Ownership.SPECIFIC, target="a1")
    [execution], _ = store.list_executions(task_id=task_id)
    with pytest.raises(Fenced):
        store.finish_execution(execution.id, agent="a1", outcome=SUCCEEDED, now=clock.now)


def test_finish_of_an_unknown_execution_is_not_found(store: SqlStore, clock: FixedClock) -> None:
    with pytest.raises(NotFound):
        store.finish_execution(404, agent="a1", outcome=SUCCEEDED, now=clock.now)


@pytest.mark.parametrize("status", [ExecutionStatus.QUEUED, ExecutionStatus.RUNNING])
def test_finish_with_a_non_terminal_status_is_refused(
    store: SqlStore,
    clock: FixedClock,
    add_agent: AddAgent,
    adhoc: Adhoc,
    claim: Claim,
    status: ExecutionStatus,
) -> None:
    add_agent("a1")
    adhoc()
    [claimed] = claim("a1")
    with pytest.raises(InvalidTransition):
        store.finish_execution(
            claimed.execution.id, agent="a1", outcome=Outcome(status=status), now=clock.now
        )


def test_failures_are_retried_with_backoff_until_max_retries(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc(
        ownership=Ownership.SPECIFIC, target="a1", max_retries=2, retry_backoff_seconds=4
    )
    delays = []
    for attempt in (1, 2, 3):
        [claimed] = claim("a1")
        assert claimed.execution.attempt == attempt
        _, wake = store.finish_execution(
            claimed.execution.id, agent="a1", outcome=FAILED, now=clock.now
        )
        retries, _ = store.list_executions(task_id=task_id, limit=1)
        if attempt < 3:
            assert retries[0].retry_of == claimed.execution.id
            assert retries[0].agent == "a1"
            assert wake == Wake(agents=frozenset({"a1"}))
            assert store.get_task(task_id).status is TaskStatus.RUNNING
            delays.append((retries[0].not_before - clock.now).total_seconds())
            clock.now = retries[0].not_before
    assert delays == [4.0, 8.0]
    assert store.list_executions(task_id=task_id)[1] == 3
    [run] = store.list_runs(task_id)
    assert run.status is RunStatus.FAILED
    assert store.get_task(task_id).status is TaskStatus.FAILED


def test_a_retry_that_succeeds_makes_the_run_succeed(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    task_id = adhoc(max_retries=1, retry_backoff_seconds=0)
    [first] = claim("a1")
    store.finish_execution(first.execution.id, agent="a1", outcome=FAILED, now=clock.now)
    [second] = claim("a1")
    assert (second.execution.attempt, second.execution.retry_of) == (2, first.execution.id)
    store.finish_execution(second.execution.id, agent="a1", outcome=SUCCEEDED, now=clock.now)
    assert store.list_runs(task_id)[0].status is RunStatus.SUCCEEDED
    assert store.get_task(task_id).status is TaskStatus.SUCCEEDED


def test_all_run_with_mixed_outcomes_fails_and_counts_each(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    for name in ("a1", "a2", "a3"):
        add_agent(name)
    task_id = adhoc(ownership=Ownership.ALL)
    outcomes = {
        "a1": SUCCEEDED,
        "a2": SUCCEEDED,
        "a3": Outcome(status=ExecutionStatus.TIMED_OUT),
    }
    for name, outcome in outcomes.items():
        [claimed] = claim(name)
        assert store.list_runs(task_id)[0].status is RunStatus.RUNNING
        store.finish_execution(claimed.execution.id, agent=name, outcome=outcome, now=clock.now)
    [run] = store.list_runs(task_id)
    assert (run.status, run.reason) == (RunStatus.FAILED, "2/3 succeeded, 1 timed_out")
    assert store.get_task(task_id).status is TaskStatus.FAILED


def test_repeating_task_keeps_its_status_and_records_the_run(
    store: SqlStore,
    clock: FixedClock,
    add_agent: AddAgent,
    claim: Claim,
    make_spec: Callable[..., object],
) -> None:
    from octopus.store._fire import fire

    add_agent("a1")
    spec = make_spec(type=TaskType.INTERVAL, interval_seconds=60)
    task = store.create_task(spec, now=clock.now).task  # type: ignore[arg-type]
    with store.engine.begin() as conn:
        fire(conn, task.id, task.spec, fire_time=clock.now, now=clock.now)
    [claimed] = claim("a1")
    store.finish_execution(claimed.execution.id, agent="a1", outcome=FAILED, now=clock.now)
    after = store.get_task(task.id)
    assert (after.status, after.last_run_status) == (TaskStatus.ACTIVE, RunStatus.FAILED)


def test_nul_in_the_log_is_replaced(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent, adhoc: Adhoc, claim: Claim
) -> None:
    add_agent("a1")
    adhoc()
    [claimed] = claim("a1")
    outcome = Outcome(status=ExecutionStatus.SUCCEEDED, log="a\x00b")
    store.finish_execution(claimed.execution.id, agent="a1", outcome=outcome, now=clock.now)
    assert store.get_execution_log(claimed.execution.id) == ("a\ufffdb", False)
