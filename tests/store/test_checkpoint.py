"""Checkpoints: the write-ahead log is folded into the database file when the server asks,
not by whichever commit crosses SQLite's own threshold."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from octopus.core.models import TaskSpec
from octopus.store import SqlStore, open_store
from octopus.store._dialect import SQLITE_AUTOCHECKPOINT_PAGES
from tests.conftest import FixedClock


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[SqlStore, Path]]:
    path = tmp_path / "octopus.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    try:
        yield store, path
    finally:
        store.close()


def test_commits_leave_the_log_to_the_checkpoint(
    sqlite_file: tuple[SqlStore, Path], make_spec: Callable[..., TaskSpec], clock: FixedClock
) -> None:
    store, path = sqlite_file
    with store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == SQLITE_AUTOCHECKPOINT_PAGES
    before = path.stat().st_size
    store.create_tasks(
        [make_spec(name=f"t{n}", args=["x" * 500]) for n in range(300)], now=clock.now
    )
    assert path.stat().st_size == before, "a commit copied the log into the database file"

    store.checkpoint()

    assert path.stat().st_size > before
    with sqlite3.connect(path) as direct:
        busy, in_log, copied = direct.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert (busy, copied) == (0, in_log)


def test_a_checkpoint_leaves_data_and_open_readers_alone(
    store: SqlStore, make_spec: Callable[..., TaskSpec], clock: FixedClock
) -> None:
    created = store.create_tasks([make_spec(name=f"t{n}") for n in range(5)], now=clock.now)
    with store.engine.connect() as reader, reader.begin():
        reader.exec_driver_sql("SELECT count(*) FROM tasks").scalar()
        store.checkpoint()  # PostgreSQL: nothing to do; SQLite: must not wait for the reader
    listed, total = store.list_tasks(limit=10)
    assert total == 5
    assert {task.id for task in listed} == {task.id for task in created.tasks}
