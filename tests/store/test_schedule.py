"""Scheduler support: due tasks, firing each fire time once, planning, pause and resume."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from octopus.core.enums import ExecutionStatus, RunStatus, TaskStatus, TaskType
from octopus.core.models import TaskSpec
from octopus.errors import InvalidTransition, NotFound
from octopus.store import SqlStore
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent

MakeSpec = Callable[..., TaskSpec]


def test_scheduled_task_fires_once_when_due(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec, add_agent: AddAgent
) -> None:
    add_agent("a1")
    run_at = clock.now + timedelta(seconds=60)
    task = store.create_task(make_spec(type=TaskType.SCHEDULED, run_at=run_at), now=clock.now).task
    assert store.due_tasks(now=clock.now) == []
    clock.advance(61)
    assert [t.id for t in store.due_tasks(now=clock.now)] == [task.id]
    run, wake = store.fire_run(task.id, fire_time=run_at, next_run_at=None, now=clock.now)
    assert run is not None and (run.fire_time, run.status) == (run_at, RunStatus.PENDING)
    assert wake.agents == frozenset({"a1"})
    again, _ = store.fire_run(task.id, fire_time=run_at, next_run_at=None, now=clock.now)
    assert again is None
    after = store.get_task(task.id)
    assert (after.status, after.next_run_at) == (TaskStatus.PENDING, None)
    assert store.due_tasks(now=clock.now) == []
    [execution], _ = store.list_executions(task_id=task.id)
    assert execution.status is ExecutionStatus.QUEUED


def test_interval_task_moves_its_next_run_and_stays_active(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    task = store.create_task(
        make_spec(type=TaskType.INTERVAL, interval_seconds=10), now=clock.now
    ).task
    later = clock.now + timedelta(seconds=10)
    run, _ = store.fire_run(task.id, fire_time=clock.now, next_run_at=later, now=clock.now)
    assert run is not None
    after = store.get_task(task.id)
    assert (after.status, after.next_run_at) == (TaskStatus.ACTIVE, later)
    assert store.fire_run(task.id, fire_time=clock.now, next_run_at=later, now=clock.now)[0] is None


def test_cron_task_is_planned_at_creation_and_plan_task_fills_a_missing_time(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    task = store.create_task(make_spec(type=TaskType.CRON, cron="*/5 * * * *"), now=clock.now).task
    first = clock.now + timedelta(minutes=5)
    assert task.next_run_at == first
    assert store.due_tasks(now=clock.now) == []
    assert not store.plan_task(task.id, next_run_at=first, now=clock.now)
    assert [t.id for t in store.due_tasks(now=first)] == [task.id]


def test_pause_and_resume(store: SqlStore, clock: FixedClock, make_spec: MakeSpec) -> None:
    task = store.create_task(
        make_spec(type=TaskType.INTERVAL, interval_seconds=10), now=clock.now
    ).task
    assert store.pause_task(task.id, now=clock.now).status is TaskStatus.PAUSED
    assert store.due_tasks(now=clock.now) == []
    assert store.fire_run(task.id, fire_time=clock.now, next_run_at=None, now=clock.now)[0] is None
    with pytest.raises(InvalidTransition):
        store.pause_task(task.id, now=clock.now)
    later = clock.now + timedelta(seconds=30)
    resumed = store.resume_task(task.id, now=clock.now, next_run_at=later)
    assert (resumed.status, resumed.next_run_at) == (TaskStatus.ACTIVE, later)
    with pytest.raises(InvalidTransition):
        store.resume_task(task.id, now=clock.now)


def test_pause_refuses_one_shot_and_unknown_tasks(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    task = store.create_task(make_spec(), now=clock.now).task
    with pytest.raises(InvalidTransition):
        store.pause_task(task.id, now=clock.now)
    with pytest.raises(NotFound):
        store.pause_task(999, now=clock.now)
