"""Every guarded status change refuses a row whose current status does not allow it."""

from __future__ import annotations

from collections.abc import Callable
from itertools import product

import pytest
from sqlalchemy import update

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus, TaskStatus
from octopus.core.states import RUN_TRANSITIONS, TASK_TERMINAL
from octopus.errors import Conflict, Fenced
from octopus.store import SqlStore
from octopus.store._settle import move_run
from octopus.store.base import Claimed, Outcome
from octopus.store.tables import executions, runs, tasks
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent

Adhoc = Callable[..., int]
pytestmark = pytest.mark.usefixtures("demo_plugin")


def _force(store: SqlStore, table: object, row_id: int, status: str, **extra: object) -> None:
    """Put a row in a status directly, bypassing the guards, to set up the refusal."""
    with store.engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == row_id).values(status=status, **extra))  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [s for s in ExecutionStatus if s is not ExecutionStatus.QUEUED])
def test_claim_takes_only_queued_executions(
    store: SqlStore,
    adhoc: Adhoc,
    add_agent: AddAgent,
    claim: Callable[..., list[Claimed]],
    status: ExecutionStatus,
) -> None:
    add_agent("a1")
    task_id = adhoc(ownership=Ownership.SPECIFIC, target="a1")
    [execution], _ = store.list_executions(task_id=task_id)
    _force(store, executions, execution.id, status.value)
    assert claim("a1") == []
    assert store.get_execution(execution.id).status is status


@pytest.mark.parametrize("status", [s for s in ExecutionStatus if s is not ExecutionStatus.RUNNING])
def test_finish_takes_only_running_executions(
    store: SqlStore, clock: FixedClock, adhoc: Adhoc, status: ExecutionStatus
) -> None:
    task_id = adhoc(ownership=Ownership.SPECIFIC, target="a1")
    [execution], _ = store.list_executions(task_id=task_id)
    _force(store, executions, execution.id, status.value)
    with pytest.raises(Fenced):
        store.finish_execution(
            execution.id,
            agent="a1",
            outcome=Outcome(status=ExecutionStatus.SUCCEEDED),
            now=clock.now,
        )
    assert store.get_execution(execution.id).status is status


RUN_PAIRS = [(old, new) for old, new in product(RunStatus, RunStatus)]


@pytest.mark.parametrize(("old", "new"), RUN_PAIRS, ids=[f"{o}->{n}" for o, n in RUN_PAIRS])
def test_run_moves_follow_the_transition_table(
    store: SqlStore, clock: FixedClock, adhoc: Adhoc, old: RunStatus, new: RunStatus
) -> None:
    task_id = adhoc(ownership=Ownership.SPECIFIC, target="a1")
    [run] = store.list_runs(task_id)
    _force(store, runs, run.id, old.value)
    with store.engine.begin() as conn:
        moved = move_run(conn, run.id, new, now=clock.now)
    assert moved == (new in RUN_TRANSITIONS[old])
    assert store.list_runs(task_id)[0].status is (new if moved else old)


@pytest.mark.parametrize("status", list(TaskStatus))
def test_cancel_refuses_only_finished_tasks(
    store: SqlStore, clock: FixedClock, adhoc: Adhoc, status: TaskStatus
) -> None:
    task_id = adhoc(ownership=Ownership.SPECIFIC, target="a1")
    _force(store, tasks, task_id, status.value)
    if status in TASK_TERMINAL:
        with pytest.raises(Conflict):
            store.cancel_task(task_id, now=clock.now)
        assert store.get_task(task_id).status is status
    else:
        assert store.cancel_task(task_id, now=clock.now)[0].status is TaskStatus.CANCELLED
