"""State machines as data: which status may follow which, and which are terminal."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from octopus.core.enums import ExecutionStatus, RunStatus, TaskStatus
from octopus.errors import InvalidTransition

_E = ExecutionStatus
_R = RunStatus

EXECUTION_TERMINAL: frozenset[ExecutionStatus] = frozenset(
    {_E.SUCCEEDED, _E.FAILED, _E.TIMED_OUT, _E.CANCELLED, _E.LOST}
)
EXECUTION_TRANSITIONS: Mapping[ExecutionStatus, frozenset[ExecutionStatus]] = {
    # A queued execution can be lost when its agent vanishes before claiming it.
    _E.QUEUED: frozenset({_E.RUNNING, _E.CANCELLED, _E.LOST}),
    _E.RUNNING: frozenset({_E.SUCCEEDED, _E.FAILED, _E.TIMED_OUT, _E.CANCELLED, _E.LOST}),
    **{status: frozenset() for status in EXECUTION_TERMINAL},
}

RUN_TERMINAL: frozenset[RunStatus] = frozenset(
    {_R.SUCCEEDED, _R.FAILED, _R.CANCELLED, _R.SKIPPED, _R.MISSED}
)
RUN_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = {
    _R.PENDING: frozenset(
        {_R.RUNNING, _R.SUCCEEDED, _R.FAILED, _R.CANCELLED, _R.SKIPPED, _R.MISSED}
    ),
    _R.RUNNING: frozenset({_R.SUCCEEDED, _R.FAILED, _R.CANCELLED}),
    **{status: frozenset() for status in RUN_TERMINAL},
}

# The one move back, kept out of the tables above so that nothing settling statuses can take
# it: an agent hands back an execution it claimed ahead and never started (``release``). The
# execution is queued again, and its run (with a one-shot task) is pending again when none of
# the run's executions has started.
EXECUTION_RELEASES: Mapping[ExecutionStatus, frozenset[ExecutionStatus]] = {
    _E.RUNNING: frozenset({_E.QUEUED}),
}
RUN_RELEASES: Mapping[RunStatus, frozenset[RunStatus]] = {_R.RUNNING: frozenset({_R.PENDING})}

TASK_TERMINAL: frozenset[TaskStatus] = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED}
)
"""Task statuses that nothing changes any more: a finished one-shot task or a cancelled one."""

_S = TypeVar("_S", bound=StrEnum)


def can_transition(table: Mapping[_S, frozenset[_S]], old: _S, new: _S) -> bool:
    """Whether ``old -> new`` is allowed by ``table``."""
    return new in table[old]


def check_transition(table: Mapping[_S, frozenset[_S]], entity: str, old: _S, new: _S) -> None:
    """Raise InvalidTransition unless ``old -> new`` is allowed by ``table``."""
    if not can_transition(table, old, new):
        raise InvalidTransition(entity, old.value, new.value)


def sources_of(table: Mapping[_S, frozenset[_S]], new: _S) -> frozenset[_S]:
    """Every status from which ``new`` may be reached: the ``IN (...)`` of a guarded update."""
    return frozenset(old for old, targets in table.items() if new in targets)
