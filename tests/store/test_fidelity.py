"""Values come back exactly as they went in: JSON on both backends, and UTC times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, MetaData, Table, create_engine, select, text
from sqlalchemy.dialects import sqlite

from octopus.core.enums import ExecutionStatus, TaskType
from octopus.core.models import ExecutionError, TaskSpec
from octopus.store import SqlStore
from octopus.store.base import Claimed, Outcome
from octopus.store.tables import UTCDateTime
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent

VALUES = [
    True,
    False,
    None,
    0,
    -(2**63),
    2**63 - 1,
    1.5,
    "",
    "nul \x00 inside",
    "unicode: é ü 日本 🐙",
    'quote " and \\ backslash',
    [],
    {},
    {"nested": [{"deep": [None, True, {"x": "\x00"}]}]},
]


def test_task_arguments_round_trip(
    store: SqlStore, clock: FixedClock, make_spec: Callable[..., TaskSpec]
) -> None:
    kwargs = {f"k{i}": value for i, value in enumerate(VALUES)}
    kwargs["key with \x00 nul"] = "v"
    task = store.create_task(make_spec(args=VALUES, kwargs=kwargs), now=clock.now).task
    stored = store.get_task(task.id).spec
    assert stored.args == VALUES
    assert stored.kwargs == kwargs
    assert [type(v) for v in stored.args] == [type(v) for v in VALUES]


@pytest.mark.usefixtures("demo_plugin")
@pytest.mark.parametrize("result", VALUES, ids=repr)
def test_results_and_errors_round_trip(
    store: SqlStore,
    clock: FixedClock,
    add_agent: AddAgent,
    claim: Callable[..., list[Claimed]],
    make_spec: Callable[..., TaskSpec],
    result: object,
) -> None:
    add_agent("a1")
    store.create_task(make_spec(args=[result]), now=clock.now)
    [claimed] = claim("a1")
    assert claimed.args == [result]
    error = ExecutionError(type="ValueError", message="bad \x00 ü", traceback="line\n\x00")
    outcome = Outcome(status=ExecutionStatus.FAILED, result=result, error=error)
    store.finish_execution(claimed.execution.id, agent="a1", outcome=outcome, now=clock.now)
    stored = store.get_execution(claimed.execution.id)
    assert (stored.result, stored.error) == (result, error)


def test_times_come_back_aware_utc(
    store: SqlStore, clock: FixedClock, make_spec: Callable[..., TaskSpec]
) -> None:
    paris = timezone(timedelta(hours=2))
    run_at = datetime(2030, 6, 1, 12, 30, 15, 123456, tzinfo=paris)
    spec = make_spec(type=TaskType.SCHEDULED, run_at=run_at)
    task = store.get_task(store.create_task(spec, now=clock.now).task.id)
    assert task.spec.run_at == run_at
    assert task.spec.run_at is not None and task.spec.run_at.utcoffset() == timedelta(0)
    assert task.next_run_at == run_at
    assert task.created_at.tzinfo is not None and task.created_at == clock.now


def test_naive_times_are_refused(store: SqlStore, clock: FixedClock) -> None:
    with pytest.raises(Exception, match="naive"):
        store.enroll_agent("a1", labels={}, token_hash="t", now=clock.now.replace(tzinfo=None))


@pytest.mark.parametrize(
    "value",
    [
        datetime(2030, 6, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
        datetime(2030, 1, 1, tzinfo=UTC),  # no microseconds: still six digits
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
    ids=str,
)
def test_sqlite_keeps_times_as_sqlalchemys_own_datetime_text(value: datetime) -> None:
    # Stored text is compared and sorted as time in SQL: it must stay exactly the format
    # of SQLAlchemy's DATETIME, which earlier versions wrote.
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("at", UTCDateTime))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"at": value}])
        raw = conn.execute(text("SELECT at FROM t")).scalar_one()
        back = conn.execute(select(table.c.at)).scalar_one()
    naive_utc = value.astimezone(UTC).replace(tzinfo=None)
    assert raw == sqlite.DATETIME().bind_processor(engine.dialect)(naive_utc)
    assert back == value and back.tzinfo is UTC


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("2030-06-01 10:30:15.123456", datetime(2030, 6, 1, 10, 30, 15, 123456, tzinfo=UTC)),
        ("2030-06-01 10:30:15", datetime(2030, 6, 1, 10, 30, 15, tzinfo=UTC)),
        ("2030-06-01 12:30:15+02:00", datetime(2030, 6, 1, 10, 30, 15, tzinfo=UTC)),
    ],
)
def test_sqlite_reads_time_text_written_by_others_as_utc(stored: str, expected: datetime) -> None:
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("at", UTCDateTime))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (at) VALUES (:at)"), {"at": stored})
        back = conn.execute(select(table.c.at)).scalar_one()
    assert back == expected and back.tzinfo is UTC

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM t"))
        conn.execute(text("INSERT INTO t (at) VALUES ('not a time')"))
        with pytest.raises(ValueError, match="Invalid isoformat"):
            conn.execute(select(table.c.at)).scalar_one()
