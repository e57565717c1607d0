"""Holding SQLite's single writer ahead of a store call (``Store.writer_if_free``): held only
while no other thread holds it, reentrant for the holder's own writes, released on errors, and
never held on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from octopus.core.models import TaskSpec
from octopus.store import SqlStore
from tests.conftest import FixedClock, migrated_store

MakeSpec = Callable[..., TaskSpec]
WAIT_SECONDS = 10.0


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[SqlStore]:
    """A migrated, empty PostgreSQL store."""
    yield from migrated_store(postgres_url)


def _create_in_thread(store: SqlStore, spec: TaskSpec, clock: FixedClock) -> threading.Thread:
    thread = threading.Thread(target=lambda: store.create_task(spec, now=clock.now))
    thread.start()
    return thread


def test_a_free_writer_is_held_and_lets_the_holders_writes_in(
    sqlite_store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    store = sqlite_store
    with store.writer_if_free() as held:
        assert held
        task = store.create_task(make_spec(), now=clock.now).task  # reentrant: no deadlock
        other = _create_in_thread(store, make_spec(name="other"), clock)
        other.join(0.3)
        assert other.is_alive()  # another thread's write waits for the holder
    other.join(WAIT_SECONDS)
    assert not other.is_alive()
    assert {t.spec.name for t in store.list_tasks()[0]} == {task.spec.name, "other"}


def test_a_writer_held_by_another_thread_is_not_held(
    sqlite_store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    store = sqlite_store
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.writer_if_free() as held:
            assert held
            holding.set()
            release.wait(WAIT_SECONDS)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(WAIT_SECONDS)
        with store.writer_if_free() as held:
            assert not held
    finally:
        release.set()
        holder.join(WAIT_SECONDS)
    with store.writer_if_free() as held:  # free again once the holder let go
        assert held


def test_the_writer_is_let_go_when_the_holders_write_fails(
    sqlite_store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    store = sqlite_store
    with pytest.raises(ZeroDivisionError), store.writer_if_free() as held:
        assert held
        store.create_task(make_spec(), now=clock.now)
        raise ZeroDivisionError
    other = _create_in_thread(store, make_spec(name="after"), clock)
    other.join(WAIT_SECONDS)
    assert not other.is_alive()
    assert "after" in {t.spec.name for t in store.list_tasks()[0]}


@pytest.mark.postgres
def test_postgresql_never_holds_a_writer(
    postgres_store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    store = postgres_store
    with store.writer_if_free() as held:
        assert not held
        other = _create_in_thread(store, make_spec(name="concurrent"), clock)
        other.join(WAIT_SECONDS)
        assert not other.is_alive()  # nothing was held, so another writer went straight in
