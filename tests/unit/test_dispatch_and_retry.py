"""Choosing agents and deciding retries: pure rules."""

from __future__ import annotations

import pytest

from octopus.core.dispatch import AgentLoad, eligible, labels_match, least_loaded
from octopus.core.enums import AgentStatus, ExecutionStatus, OnLost, Ownership
from octopus.core.retry import LOST_REQUEUE_LIMIT, AttemptHistory, RetryPlan, plan_retry


def load(
    name: str,
    *,
    assigned: int = 0,
    concurrency: int = 2,
    status: AgentStatus = AgentStatus.ONLINE,
    **labels: str,
) -> AgentLoad:
    return AgentLoad(
        name=name, status=status, labels=labels, concurrency=concurrency, assigned=assigned
    )


def test_labels_must_all_match() -> None:
    assert labels_match({"os": "linux", "dc": "a"}, {"os": "linux"})
    assert not labels_match({"os": "linux"}, {"os": "linux", "dc": "a"})
    assert labels_match({}, {})


def test_only_online_matching_agents_are_eligible() -> None:
    agents = [
        load("b", os="linux"),
        load("a", os="linux"),
        load("c", os="windows"),
        load("d", os="linux", status=AgentStatus.OFFLINE),
        load("e", os="linux", status=AgentStatus.DRAINING),
    ]
    assert [a.name for a in eligible(agents, {"os": "linux"})] == ["a", "b"]


def test_least_loaded_uses_the_share_of_slots_in_use() -> None:
    agents = [load("a", assigned=1, concurrency=2), load("b", assigned=1, concurrency=4)]
    assert least_loaded(agents, {}) == "b"
    assert least_loaded([load("a", assigned=0), load("b", assigned=0)], {}) == "a"
    assert least_loaded([load("x", status=AgentStatus.OFFLINE)], {}) is None


def plan(
    outcome: ExecutionStatus,
    ownership: Ownership = Ownership.ANYONE,
    *,
    failures: int = 1,
    lost: int = 0,
    max_retries: int = 2,
    on_lost: OnLost = OnLost.RETRY,
) -> RetryPlan | None:
    return plan_retry(
        outcome=outcome,
        ownership=ownership,
        agent="a1",
        history=AttemptHistory(attempt=failures + lost, failures=failures, lost=lost),
        max_retries=max_retries,
        backoff_seconds=1.0,
        on_lost=on_lost,
    )


@pytest.mark.parametrize("outcome", [ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT])
def test_failures_retry_with_exponential_backoff_until_max_retries(
    outcome: ExecutionStatus,
) -> None:
    assert plan(outcome, failures=1) == RetryPlan(delay_seconds=1.0, agent=None)
    assert plan(outcome, failures=2) == RetryPlan(delay_seconds=2.0, agent=None)
    assert plan(outcome, failures=3) is None


def test_success_and_cancel_never_retry() -> None:
    assert plan(ExecutionStatus.SUCCEEDED) is None
    assert plan(ExecutionStatus.CANCELLED) is None


def test_lost_anyone_moves_at_once_up_to_the_limit_unless_on_lost_fail() -> None:
    assert plan(ExecutionStatus.LOST, failures=0, lost=1) == RetryPlan(delay_seconds=0, agent=None)
    assert plan(ExecutionStatus.LOST, failures=0, lost=LOST_REQUEUE_LIMIT + 1) is None
    assert plan(ExecutionStatus.LOST, failures=0, lost=1, on_lost=OnLost.FAIL) is None


@pytest.mark.parametrize("ownership", [Ownership.ALL, Ownership.SPECIFIC])
def test_all_and_specific_work_never_moves(ownership: Ownership) -> None:
    assert plan(ExecutionStatus.FAILED, ownership) == RetryPlan(delay_seconds=1.0, agent="a1")
    assert plan(ExecutionStatus.LOST, ownership, failures=1, lost=1) == RetryPlan(
        delay_seconds=1.0, agent="a1"
    )
    assert plan(ExecutionStatus.LOST, ownership, failures=1, max_retries=0) is None
