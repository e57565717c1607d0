"""Pruning history: old finished work goes in bounded batches; unfinished work and repeating
tasks' rows stay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise

import pytest

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus, TaskStatus, TaskType
from octopus.core.models import TaskSpec
from octopus.errors import NotFound
from octopus.store import SqlStore
from octopus.store.base import Claimed, Outcome
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent

MakeSpec = Callable[..., TaskSpec]
Claim = Callable[..., list[Claimed]]
DAY = 86_400.0


def _finish(store: SqlStore, claim: Claim, clock: FixedClock) -> None:
    [claimed] = claim("a1")
    outcome = Outcome(status=ExecutionStatus.SUCCEEDED, log="output " * 100)
    store.finish_execution(claimed.execution.id, agent="a1", outcome=outcome, now=clock.now)


def _failed_at_once(store: SqlStore, clock: FixedClock, make_spec: MakeSpec) -> int:
    """An ``all`` task with no agent online fails at once (its run is skipped)."""
    return store.create_task(make_spec(ownership=Ownership.ALL), now=clock.now).task.id


@pytest.mark.usefixtures("demo_plugin")
def test_old_finished_tasks_go_with_their_runs_and_logs_recent_and_unfinished_stay(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec, add_agent: AddAgent, claim: Claim
) -> None:
    add_agent("a1")
    old = store.create_task(make_spec(ownership=Ownership.SPECIFIC, target="a1"), now=clock.now)
    _finish(store, claim, clock)
    old_unfinished = store.create_task(make_spec(), now=clock.now).task.id
    clock.advance(40 * DAY)
    recent = store.create_task(make_spec(ownership=Ownership.SPECIFIC, target="a1"), now=clock.now)
    clock.advance(5 * DAY)
    [pruned_execution] = store.list_executions(task_id=old.task.id)[0]

    pruned = store.prune_history(before=clock.now - timedelta(days=30), batch_size=500)

    assert (pruned.tasks, pruned.runs, pruned.executions) == (1, 1, 1)
    with pytest.raises(NotFound):
        store.get_task(old.task.id)
    with pytest.raises(NotFound):
        store.get_execution_log(pruned_execution.id)
    assert store.get_task(old_unfinished).status is TaskStatus.PENDING
    assert store.get_task(recent.task.id).status is not None
    again = store.prune_history(before=clock.now - timedelta(days=30), batch_size=500)
    assert (again.tasks, again.runs) == (0, 0)


def test_nothing_is_pruned_before_its_time(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    task_id = _failed_at_once(store, clock, make_spec)
    clock.advance(29 * DAY)
    pruned = store.prune_history(before=clock.now - timedelta(days=30), batch_size=500)
    assert (pruned.tasks, pruned.runs, pruned.executions) == (0, 0, 0)
    assert store.get_task(task_id).status is TaskStatus.FAILED


def test_pruning_goes_in_batches_of_at_most_batch_size(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    ids = [_failed_at_once(store, clock, make_spec) for _ in range(7)]
    clock.advance(31 * DAY)
    before = clock.now - timedelta(days=30)
    # Each task takes two rows: its own and its (skipped) run's.
    sizes = [store.prune_history(before=before, batch_size=4).tasks for _ in range(5)]
    assert sizes == [2, 2, 2, 1, 0]
    for task_id in ids:
        with pytest.raises(NotFound):
            store.get_task(task_id)


def test_a_repeating_task_keeps_its_row_and_unfinished_runs(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    every = make_spec(type=TaskType.INTERVAL, interval_seconds=10, ownership=Ownership.ALL)
    repeating = store.create_task(every, now=clock.now).task
    waiting = make_spec(type=TaskType.INTERVAL, interval_seconds=10)  # anyone: queued, no agent
    unfinished = store.create_task(waiting, now=clock.now).task
    start, later = clock.now, clock.now + timedelta(days=60)
    fires = [start, start + timedelta(seconds=10), start + timedelta(seconds=20), later]
    for task in (repeating, unfinished):
        for fire, following in pairwise(fires):
            store.fire_run(task.id, fire_time=fire, next_run_at=following, now=fire)
    clock.now = later
    recent, _ = store.fire_run(repeating.id, fire_time=later, next_run_at=None, now=later)
    pending = store.list_runs(unfinished.id, status=RunStatus.PENDING)
    assert len(pending) == 1  # the other two firings were skipped by the overlap policy

    pruned = store.prune_history(before=clock.now - timedelta(days=30), batch_size=500)

    assert (pruned.tasks, pruned.runs) == (0, 5)
    assert store.get_task(repeating.id).id == repeating.id
    assert recent is not None
    assert [r.id for r in store.list_runs(repeating.id)] == [recent.id]
    assert [r.id for r in store.list_runs(unfinished.id)] == [pending[0].id]


@pytest.mark.usefixtures("demo_plugin")
def test_a_batch_counts_executions_as_rows_too(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec, add_agent: AddAgent, claim: Claim
) -> None:
    for name in ("a1", "a2", "a3"):
        add_agent(name)
    # One `all` task with three executions, then two with none.
    wide = store.create_task(make_spec(ownership=Ownership.ALL), now=clock.now).task.id
    for name in ("a1", "a2", "a3"):
        [claimed] = claim(name)
        outcome = Outcome(status=ExecutionStatus.SUCCEEDED)
        store.finish_execution(claimed.execution.id, agent=name, outcome=outcome, now=clock.now)
    store.revoke_agent("a1", now=clock.now)
    for name in ("a2", "a3"):
        store.set_draining(name, True, now=clock.now)
    narrow = [_failed_at_once(store, clock, make_spec) for _ in range(2)]
    clock.advance(31 * DAY)
    before = clock.now - timedelta(days=30)

    # The wide task takes 5 rows (task, run, 3 executions): it goes alone; the others take 2.
    batches = [store.prune_history(before=before, batch_size=3) for _ in range(4)]

    assert [(b.tasks, b.runs, b.executions) for b in batches] == [
        (1, 1, 3),
        (1, 1, 0),
        (1, 1, 0),
        (0, 0, 0),
    ]
    for task_id in (wide, *narrow):
        with pytest.raises(NotFound):
            store.get_task(task_id)


def test_max_runs_per_task_keeps_each_repeating_tasks_newest_finished_runs(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    every = make_spec(type=TaskType.INTERVAL, interval_seconds=10, ownership=Ownership.ALL)
    task = store.create_task(every, now=clock.now).task
    fires = [clock.now + timedelta(seconds=10 * k) for k in range(6)]
    for fire, following in pairwise(fires):
        store.fire_run(task.id, fire_time=fire, next_run_at=following, now=fire)
    kept = [r.id for r in store.list_runs(task.id)][:2]

    pruned = store.prune_history(before=None, batch_size=500, keep_runs=2)

    assert (pruned.tasks, pruned.runs) == (0, 3)
    assert [r.id for r in store.list_runs(task.id)] == kept
    again = store.prune_history(before=None, batch_size=500, keep_runs=2)
    assert again.runs == 0


def test_without_a_criterion_nothing_is_pruned(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    task_id = _failed_at_once(store, clock, make_spec)
    clock.advance(4000 * DAY)
    assert store.prune_history(before=None, batch_size=500).tasks == 0
    assert store.get_task(task_id).status is TaskStatus.FAILED
