"""Every pair of statuses against the transition tables."""

from __future__ import annotations

import itertools

import pytest

from octopus.core.enums import ExecutionStatus, RunStatus
from octopus.core.states import (
    EXECUTION_TERMINAL,
    EXECUTION_TRANSITIONS,
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    can_transition,
    check_transition,
    sources_of,
)
from octopus.errors import InvalidTransition

E = ExecutionStatus
R = RunStatus

EXECUTION_ALLOWED = {
    (E.QUEUED, E.RUNNING),
    (E.QUEUED, E.CANCELLED),
    (E.QUEUED, E.LOST),
    (E.RUNNING, E.SUCCEEDED),
    (E.RUNNING, E.FAILED),
    (E.RUNNING, E.TIMED_OUT),
    (E.RUNNING, E.CANCELLED),
    (E.RUNNING, E.LOST),
}
RUN_ALLOWED = {(R.PENDING, s) for s in R if s is not R.PENDING} | {
    (R.RUNNING, R.SUCCEEDED),
    (R.RUNNING, R.FAILED),
    (R.RUNNING, R.CANCELLED),
}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(E, E)))
def test_execution_pair(old: ExecutionStatus, new: ExecutionStatus) -> None:
    allowed = (old, new) in EXECUTION_ALLOWED
    assert can_transition(EXECUTION_TRANSITIONS, old, new) is allowed
    if allowed:
        check_transition(EXECUTION_TRANSITIONS, "execution", old, new)
    else:
        with pytest.raises(InvalidTransition, match=f"from {old.value} to {new.value}"):
            check_transition(EXECUTION_TRANSITIONS, "execution", old, new)


@pytest.mark.parametrize(("old", "new"), list(itertools.product(R, R)))
def test_run_pair(old: RunStatus, new: RunStatus) -> None:
    assert can_transition(RUN_TRANSITIONS, old, new) is ((old, new) in RUN_ALLOWED)


def test_terminal_statuses_have_no_way_out() -> None:
    assert all(not EXECUTION_TRANSITIONS[s] for s in EXECUTION_TERMINAL)
    assert all(not RUN_TRANSITIONS[s] for s in RUN_TERMINAL)
    assert set(EXECUTION_TRANSITIONS) == set(E)
    assert set(RUN_TRANSITIONS) == set(R)


def test_sources_of_gives_the_guard_of_an_update() -> None:
    assert sources_of(EXECUTION_TRANSITIONS, E.LOST) == {E.QUEUED, E.RUNNING}
    assert sources_of(EXECUTION_TRANSITIONS, E.SUCCEEDED) == {E.RUNNING}
    assert sources_of(EXECUTION_TRANSITIONS, E.QUEUED) == frozenset()
