"""How executions add up to a run's status, and a run's status to its task's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from octopus.core.enums import ExecutionStatus, RunStatus, TaskStatus, TaskType
from octopus.core.states import EXECUTION_TERMINAL


class Attempt(Protocol):
    """What rolling up needs of an execution (an ``Execution`` has it; settling a run in the
    store reads only these columns)."""

    @property
    def id(self) -> int: ...

    @property
    def retry_of(self) -> int | None: ...

    @property
    def status(self) -> ExecutionStatus: ...

    @property
    def started_at(self) -> datetime | None: ...


A = TypeVar("A", bound=Attempt)


@dataclass(frozen=True, slots=True)
class RunRollup:
    """The counts of a run's latest attempts by status, and the status they add up to."""

    status: RunStatus
    counts: dict[str, int]

    def summary(self) -> str:
        """A human line such as ``37/40 succeeded, 2 failed, 1 lost``."""
        total = sum(self.counts.values())
        done = self.counts.get(ExecutionStatus.SUCCEEDED, 0)
        parts = [f"{done}/{total} succeeded"]
        parts += [f"{n} {s}" for s, n in sorted(self.counts.items()) if s != "succeeded" and n]
        return ", ".join(parts)


def latest_attempts(executions: Sequence[A]) -> list[A]:
    """The executions that no retry has superseded: one per agent slot of the run."""
    superseded = {e.retry_of for e in executions if e.retry_of is not None}
    return [e for e in executions if e.id not in superseded]


def roll_up(executions: Sequence[Attempt]) -> RunRollup:
    """Derive a run's status from its executions.

    A run is running while any latest attempt is running, or queued after an earlier attempt
    started; it succeeds when every latest attempt succeeded, is cancelled when any was
    cancelled, and fails otherwise.
    """
    latest = latest_attempts(executions)
    counts = dict(Counter(e.status.value for e in latest))
    if not latest:
        return RunRollup(RunStatus.PENDING, counts)
    if any(e.status not in EXECUTION_TERMINAL for e in latest):
        started = any(e.started_at is not None for e in executions)
        return RunRollup(RunStatus.RUNNING if started else RunStatus.PENDING, counts)
    statuses = {e.status for e in latest}
    if statuses == {ExecutionStatus.SUCCEEDED}:
        return RunRollup(RunStatus.SUCCEEDED, counts)
    if ExecutionStatus.CANCELLED in statuses:
        return RunRollup(RunStatus.CANCELLED, counts)
    return RunRollup(RunStatus.FAILED, counts)


_ONE_SHOT_STATUS = {
    RunStatus.PENDING: TaskStatus.PENDING,
    RunStatus.RUNNING: TaskStatus.RUNNING,
    RunStatus.SUCCEEDED: TaskStatus.SUCCEEDED,
    RunStatus.FAILED: TaskStatus.FAILED,
    RunStatus.CANCELLED: TaskStatus.CANCELLED,
    RunStatus.SKIPPED: TaskStatus.FAILED,
    RunStatus.MISSED: TaskStatus.FAILED,
}


def task_status_after(task_type: TaskType, current: TaskStatus, run: RunStatus) -> TaskStatus:
    """A task's status once one of its runs has moved to ``run``.

    One-shot tasks follow their only run; repeating tasks stay ``active``, ``paused`` or
    ``cancelled`` and show the run's outcome in ``last_run_status`` instead.
    """
    if task_type.repeats:
        return current
    return _ONE_SHOT_STATUS[run]
