"""The periodic passes (reaper, scheduler tick, plugin scan) with nothing to do only read: they
never wait for SQLite's single writer, which claims, reports and creates need. With work to
do they take it as before."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

import pytest

from octopus.core.enums import AgentStatus, ExecutionStatus, Ownership, TaskType
from octopus.core.models import TaskSpec
from octopus.server.scheduler import Scheduler
from octopus.store import SqlStore
from octopus.store.base import PluginVersion, Sweep
from tests.conftest import FixedClock
from tests.store.conftest import DEMO, LEASE_SECONDS, AddAgent

T = TypeVar("T")
MakeSpec = Callable[..., TaskSpec]
WAIT_SECONDS = 5.0
HELD_SECONDS = 0.5


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    """SQLite only: its writer is the one a pass could wait for (PostgreSQL never holds one)."""
    return sqlite_store


def _while_writer_held(store: SqlStore, work: Callable[[], T]) -> tuple[T, bool]:
    """Run ``work`` in a thread while this thread holds the writer; its result, and whether it
    finished before the writer was let go."""
    results: list[T] = []
    thread = threading.Thread(target=lambda: results.append(work()))
    with store.writer_if_free() as held:
        assert held
        thread.start()
        thread.join(HELD_SECONDS)
        finished_while_held = not thread.is_alive()
    thread.join(WAIT_SECONDS)
    assert not thread.is_alive() and results, "the pass never finished"
    return results[0], finished_while_held


def test_an_idle_reaper_pass_does_not_wait_for_the_writer(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    add_agent("a1")
    sweep, early = _while_writer_held(
        store, lambda: store.reap(now=clock.now, client_timeout=LEASE_SECONDS)
    )
    assert early and sweep == Sweep()


def test_a_reaper_pass_with_work_takes_the_writer_and_does_it(
    store: SqlStore, clock: FixedClock, add_agent: AddAgent
) -> None:
    add_agent("a1")
    later = clock.now + timedelta(seconds=LEASE_SECONDS + 1)
    sweep, early = _while_writer_held(
        store, lambda: store.reap(now=later, client_timeout=LEASE_SECONDS)
    )
    assert not early and sweep.offline == ["a1"]
    assert store.get_agent("a1").status is AgentStatus.OFFLINE


def test_a_reaper_pass_finds_a_lease_expired_and_work_queued_on_a_draining_agent(
    store: SqlStore,
    clock: FixedClock,
    add_agent: AddAgent,
    make_spec: MakeSpec,
    demo_plugin: PluginVersion,
) -> None:
    add_agent("a1")
    add_agent("a2", draining=True)
    running = store.create_task(make_spec(target="a1", ownership=Ownership.SPECIFIC), now=clock.now)
    [claimed] = store.claim("a1", slots=1, now=clock.now, lease_seconds=1).claimed
    queued = store.create_task(make_spec(target="a2", ownership=Ownership.SPECIFIC), now=clock.now)
    after_lease = clock.now + timedelta(seconds=2)  # both agents still within client_timeout

    sweep = store.reap(now=after_lease, client_timeout=LEASE_SECONDS)

    assert sweep.lost == [claimed.execution.id] and sweep.offline == []
    lost = store.get_execution(claimed.execution.id)
    assert (lost.task_id, lost.status) == (running.task.id, ExecutionStatus.LOST)
    [left], _ = store.list_executions(task_id=queued.task.id)
    assert left.status is ExecutionStatus.QUEUED  # a specific task's work waits for its agent


def test_an_idle_scheduler_tick_does_not_wait_for_the_writer(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    later = clock.now + timedelta(hours=1)
    task = store.create_task(make_spec(type=TaskType.SCHEDULED, run_at=later), now=clock.now).task
    tick, early = _while_writer_held(store, lambda: Scheduler(store).tick(clock.now))
    assert early and tick.runs == [] and tick.next_due == later
    assert store.get_task(task.id).next_run_at == later


def test_a_scheduler_tick_with_a_due_task_takes_the_writer_and_fires_it(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    task = store.create_task(
        make_spec(type=TaskType.SCHEDULED, run_at=clock.now), now=clock.now
    ).task
    tick, early = _while_writer_held(store, lambda: Scheduler(store).tick(clock.now))
    assert not early and [run.task_id for run in tick.runs] == [task.id]


def test_an_unchanged_plugin_scan_does_not_wait_for_the_writer(
    store: SqlStore, clock: FixedClock
) -> None:
    assert store.sync_plugins([DEMO], now=clock.now) == ["demo"]
    changed, early = _while_writer_held(store, lambda: store.sync_plugins([DEMO], now=clock.now))
    assert early and changed == []


def test_a_changed_plugin_scan_takes_the_writer_and_stores_it(
    store: SqlStore, clock: FixedClock
) -> None:
    assert store.sync_plugins([DEMO], now=clock.now) == ["demo"]
    newer = replace(DEMO, sha256="b" * 64, source=b"def echo(x):\n    return [x]\n")
    changed, early = _while_writer_held(store, lambda: store.sync_plugins([newer], now=clock.now))
    assert not early and changed == ["demo"]
    assert store.get_plugin("demo").sha256 == "b" * 64
    assert store.sync_plugins([], now=clock.now) == ["demo"]  # gone from the folder
    assert store.list_plugins() == []
