"""Creating many tasks at once: every id answered is the row stored for that request item."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from octopus.core.enums import Ownership, TaskType
from octopus.core.models import TaskSpec
from octopus.store import SqlStore
from octopus.store._dialect import insert_returning_ids
from octopus.store.tables import tasks
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent


def test_each_answered_id_holds_its_own_item_and_run(
    store: SqlStore, make_spec: Callable[..., TaskSpec], clock: FixedClock
) -> None:
    # No agent: an ``all`` run is skipped at once, so the task has ended and can be deleted,
    # which frees the largest id (SQLite hands it out again).
    first = store.create_tasks([make_spec(name="before", ownership=Ownership.ALL)], now=clock.now)
    freed = first.tasks[0].id
    store.delete_task(freed)
    specs = [make_spec(name=f"item-{n}", args=[n]) for n in range(50)]
    specs.insert(7, make_spec(name="later", type=TaskType.INTERVAL, interval_seconds=60))

    created = store.create_tasks(specs, now=clock.now).tasks

    ids = [task.id for task in created]
    if store.engine.dialect.name == "sqlite":  # as SQLite numbers rows itself: largest + 1
        assert ids == list(range(freed, freed + len(specs)))
    assert len(set(ids)) == len(specs)
    for spec, task in zip(specs, created, strict=True):
        stored = store.get_task(task.id)
        assert (stored.spec.name, stored.spec.args) == (spec.name, spec.args)
        assert store.count_runs(task.id) == (0 if spec.type is TaskType.INTERVAL else 1)


def test_created_tasks_are_built_from_what_was_written_without_the_database(
    store: SqlStore, make_spec: Callable[..., TaskSpec], clock: FixedClock
) -> None:
    specs = [make_spec(name=f"item-{n}", args=[n]) for n in range(5)]
    many = store.create_tasks(specs, now=clock.now, idempotency_key="k")
    one = store.create_task(
        make_spec(name="one", type=TaskType.INTERVAL, interval_seconds=9), now=clock.now
    )
    repeat = store.create_tasks(specs, now=clock.now, idempotency_key="k")
    stored = [store.get_task(task_id) for task_id in many.ids]
    stored_one = store.get_task(one.ids[0])
    store.close()  # the records are built on first use, after the transaction

    assert many.created and len(many.ids) == len(specs)
    assert many.tasks == stored and [task.id for task in many.tasks] == many.ids
    assert one.task == stored_one and one.tasks == [stored_one]
    assert (repeat.created, repeat.ids, repeat.tasks) == (False, many.ids, stored)


def test_inserting_no_rows_stores_nothing(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        assert insert_returning_ids(conn, tasks, []) == []
    assert store.list_tasks(limit=1)[1] == 0


def test_created_tasks_are_answered_as_they_read_back(
    store: SqlStore, make_spec: Callable[..., TaskSpec], clock: FixedClock, add_agent: AddAgent
) -> None:
    # The answer is built from what was written, not read back: times come back in UTC,
    # JSON as stored, and a run skipped at once settles on its task.
    add_agent("a1")
    paris = ZoneInfo("Europe/Paris")
    later = (clock.now + timedelta(hours=1)).astimezone(paris)
    specs = [
        make_spec(),
        make_spec(ownership=Ownership.ALL, labels={"zone": "nowhere"}),  # skipped: nobody
        make_spec(
            ownership=Ownership.SPECIFIC,
            target="a1",
            args=[1.5, None, {"deep": [True, "\x00"]}],
            kwargs={"k": [], "n": -(2**63)},
            timeout_seconds=5,
            max_retries=2,
            retry_backoff_seconds=3,
        ),
        make_spec(type=TaskType.SCHEDULED, run_at=later),
        make_spec(
            type=TaskType.INTERVAL,
            interval_seconds=30,
            start_at=later,
            end_at=later + timedelta(days=1),
            jitter_seconds=1,
        ),
        make_spec(type=TaskType.CRON, cron="*/5 * * * *", timezone="Europe/Paris"),
    ]
    now = clock.now.astimezone(paris)

    created = store.create_tasks(specs, now=now).tasks
    singles = [store.create_task(spec, now=now).task for spec in specs]

    for task in [*created, *singles]:
        assert repr(task) == repr(store.get_task(task.id))  # repr: equal times in UTC too
    assert [task.status.value for task in created[:2]] == ["pending", "failed"]
