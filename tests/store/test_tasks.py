"""Creating, reading and listing tasks; idempotent creation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from octopus.core.enums import Ownership, RunStatus, TaskStatus, TaskType
from octopus.core.models import TaskSpec
from octopus.errors import Conflict, NotFound
from octopus.store import SqlStore
from tests.conftest import FixedClock

MakeSpec = Callable[..., TaskSpec]


def test_create_and_get_round_trips_the_spec(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    spec = make_spec(
        args=[1, "two"],
        kwargs={"k": [True, None]},
        labels={"zone": "eu"},
        timeout_seconds=2.5,
        max_retries=3,
        retry_backoff_seconds=0.5,
    )
    created = store.create_task(spec, now=clock.now)
    assert created.created
    assert store.get_task(created.task.id) == created.task
    assert created.task.spec == spec
    assert created.task.created_at == clock.now


def test_get_unknown_task_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        store.get_task(999)


@pytest.mark.parametrize(
    ("overrides", "status", "next_run"),
    [
        ({"type": TaskType.SCHEDULED, "run_at_in": 60}, TaskStatus.SCHEDULED, 60),
        ({"type": TaskType.INTERVAL, "interval_seconds": 5.0}, TaskStatus.ACTIVE, 0),
        (
            {"type": TaskType.INTERVAL, "interval_seconds": 5, "start_at_in": 30},
            TaskStatus.ACTIVE,
            30,
        ),
        ({"type": TaskType.CRON, "cron": "*/5 * * * *"}, TaskStatus.ACTIVE, 300),
    ],
)
def test_timed_tasks_wait_without_firing(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    overrides: dict[str, object],
    status: TaskStatus,
    next_run: int | None,
) -> None:
    for field in ("run_at", "start_at"):
        offset = overrides.pop(f"{field}_in", None)
        if offset is not None:
            overrides[field] = clock.now + timedelta(seconds=float(str(offset)))
    task = store.create_task(make_spec(**overrides), now=clock.now).task
    assert task.status is status
    expected = None if next_run is None else clock.now + timedelta(seconds=next_run)
    assert task.next_run_at == expected
    assert store.list_runs(task.id) == []


def test_adhoc_task_fires_one_run_at_once(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    task = store.create_task(make_spec(), now=clock.now).task
    assert task.status is TaskStatus.PENDING
    [run] = store.list_runs(task.id)
    assert (run.status, run.fire_time) == (RunStatus.PENDING, clock.now)


def test_list_filters_and_paginates_newest_first(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    ids = [
        store.create_task(make_spec(plugin=f"p{i % 2}"), now=clock.now).task.id for i in range(5)
    ]
    store.create_task(make_spec(type=TaskType.CRON, cron="* * * * *"), now=clock.now)
    page, total = store.list_tasks(limit=2, offset=1)
    assert total == 6
    assert [t.id for t in page] == [ids[4], ids[3]]
    by_plugin, total = store.list_tasks(plugin="p0")
    assert ([t.id for t in by_plugin], total) == ([ids[4], ids[2], ids[0]], 3)
    cron, total = store.list_tasks(type=TaskType.CRON, status=TaskStatus.ACTIVE)
    assert total == 1 and cron[0].spec.cron == "* * * * *"
    nothing, total = store.list_tasks(status=TaskStatus.SUCCEEDED)
    assert (nothing, total) == ([], 0)


def test_list_past_the_end_is_empty_with_total(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    store.create_task(make_spec(), now=clock.now)
    assert store.list_tasks(offset=10) == ([], 1)


def test_same_key_and_hash_returns_the_stored_task(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    first = store.create_task(make_spec(), now=clock.now, idempotency_key="k", request_hash="h")
    clock.advance(5)
    again = store.create_task(make_spec(), now=clock.now, idempotency_key="k", request_hash="h")
    assert (again.created, again.task) == (False, first.task)
    assert store.list_tasks()[1] == 1
    assert len(store.list_runs(first.task.id)) == 1


def test_same_key_with_another_hash_is_a_conflict_and_stores_nothing(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    store.create_task(make_spec(), now=clock.now, idempotency_key="k", request_hash="h")
    with pytest.raises(Conflict, match="idempotency key"):
        store.create_task(
            make_spec(name="other"), now=clock.now, idempotency_key="k", request_hash="h2"
        )
    assert store.list_tasks()[1] == 1
    assert store.list_executions()[1] == 1


def test_a_failed_create_stores_nothing(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    naive = clock.now.replace(tzinfo=None)
    with pytest.raises(Exception, match="naive"):
        store.create_task(make_spec(type=TaskType.SCHEDULED, run_at=naive), now=clock.now)
    assert store.list_tasks() == ([], 0)


def test_list_runs_and_executions_of_unknown_task_are_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        store.list_runs(42)
    with pytest.raises(NotFound):
        store.list_executions(task_id=42)


def test_list_executions_by_task_and_run(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec, add_agent: Callable[..., object]
) -> None:
    for name in ("a1", "a2", "a3"):
        add_agent(name)
    first = store.create_task(make_spec(ownership=Ownership.ALL), now=clock.now).task
    store.create_task(make_spec(ownership=Ownership.ALL), now=clock.now)
    page, total = store.list_executions(task_id=first.id, limit=2)
    assert total == 3
    assert [e.agent for e in page] == ["a3", "a2"]
    [run] = store.list_runs(first.id)
    assert store.list_executions(run_ids=[run.id])[1] == 3
    assert store.list_executions(run_ids=[])[1] == 0
    assert store.list_executions()[1] == 6


def test_unknown_execution_and_log_are_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        store.get_execution(7)
    with pytest.raises(NotFound):
        store.get_execution_log(7)
