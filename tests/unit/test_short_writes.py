"""``store_write``: a short write runs on the event loop while SQLite's writer is free, and in
a worker thread when the writer is busy (the loop keeps turning meanwhile) or the write is
long."""

from __future__ import annotations

import asyncio
import threading
import time

from octopus.core.models import TaskSpec
from octopus.server.short_writes import SHORT_WRITE_ROWS, store_write
from octopus.store import SqlStore
from tests.conftest import FixedClock

SPEC = TaskSpec(name="demo.echo", plugin="demo", action="echo")
HOLD_SECONDS = 0.5


def _create_noting_thread(store: SqlStore, clock: FixedClock, threads: list[int]) -> int:
    threads.append(threading.get_ident())
    return store.create_task(SPEC, now=clock.now).task.id


def test_a_short_write_runs_on_the_event_loop_when_the_writer_is_free(
    sqlite_store: SqlStore, clock: FixedClock
) -> None:
    async def scenario() -> tuple[int, list[int]]:
        threads: list[int] = []
        await store_write(sqlite_store, 1, _create_noting_thread, sqlite_store, clock, threads)
        return threading.get_ident(), threads

    loop_thread, threads = asyncio.run(scenario())
    assert threads == [loop_thread]
    assert sqlite_store.list_tasks()[1] == 1


def test_a_long_write_runs_in_a_worker_thread(sqlite_store: SqlStore, clock: FixedClock) -> None:
    async def scenario() -> tuple[int, list[int]]:
        threads: list[int] = []
        rows = SHORT_WRITE_ROWS + 1
        await store_write(sqlite_store, rows, _create_noting_thread, sqlite_store, clock, threads)
        return threading.get_ident(), threads

    loop_thread, [thread] = asyncio.run(scenario())
    assert thread != loop_thread
    assert sqlite_store.list_tasks()[1] == 1


def test_a_busy_writer_sends_the_write_to_a_thread_and_the_loop_keeps_turning(
    sqlite_store: SqlStore, clock: FixedClock
) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with sqlite_store.writer_if_free() as held:
            assert held
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()

    async def scenario() -> tuple[int, list[int], int, float]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        asyncio.get_running_loop().call_later(HOLD_SECONDS, release.set)
        began = time.monotonic()
        threads: list[int] = []
        await store_write(sqlite_store, 1, _create_noting_thread, sqlite_store, clock, threads)
        waited = time.monotonic() - began
        ticker.cancel()
        return threading.get_ident(), threads, ticks, waited

    try:
        assert holding.wait(10)
        loop_thread, [thread], ticks, waited = asyncio.run(scenario())
    finally:
        release.set()
        holder.join(10)
    assert thread != loop_thread
    assert waited >= HOLD_SECONDS * 0.9  # the write waited for the holder...
    assert ticks >= 10  # ...in a thread, while the loop went on turning
    assert sqlite_store.list_tasks()[1] == 1


def test_a_failing_write_on_the_loop_lets_the_writer_go(
    sqlite_store: SqlStore, clock: FixedClock
) -> None:
    def fail() -> None:
        sqlite_store.create_task(SPEC, now=clock.now)
        raise ValueError("refused")

    async def scenario() -> None:
        try:
            await store_write(sqlite_store, 1, fail)
        except ValueError:
            pass
        else:
            raise AssertionError("the failure was lost")

    asyncio.run(scenario())
    done = threading.Event()
    other = threading.Thread(
        target=lambda: (_create_noting_thread(sqlite_store, clock, []), done.set())
    )
    other.start()
    assert done.wait(10)  # another thread writes: the writer was let go
    other.join(10)
