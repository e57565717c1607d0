"""Handing a new execution straight to a waiting claim: leased in the creating (or firing)
transaction, given to the claim after the commit, and the claim's slot given back whenever it
is not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus, TaskStatus, TaskType
from octopus.core.models import TaskSpec
from octopus.core.timing import jitter_seconds_for
from octopus.errors import Conflict
from octopus.server.notifier import Notifier, Waiter
from octopus.server.scheduler import Scheduler
from octopus.server.short_writes import SHORT_WRITE_ROWS, store_write
from octopus.store import SqlStore
from octopus.store.base import Claimed, Created, PluginVersion
from tests.conftest import FixedClock
from tests.store.conftest import LEASE_SECONDS, AddAgent

MakeSpec = Callable[..., TaskSpec]


@dataclass
class Outcome:
    created: Created | None
    handed: list[Claimed]
    free: int
    error: Exception | None = None


def create_while_waiting(
    store: SqlStore,
    spec: TaskSpec,
    now: object,
    *,
    agent: str = "a1",
    slots: int = 2,
    key: str | None = None,
    request_hash: str | None = None,
    on_loop: bool = False,
) -> Outcome:
    """Create ``spec`` while ``agent``'s claim waits: in a worker thread, or ``on_loop`` as
    the route does while the writer is free (``store_write``)."""

    async def scenario() -> Outcome:
        notifier = Notifier()
        with notifier.listen(agent, slots) as waiter:
            notifier.wait_open(waiter)
            created: Created | None = None
            error: Exception | None = None
            try:
                with notifier.handing(LEASE_SECONDS) as handoff:
                    rows = 1 if on_loop else SHORT_WRITE_ROWS + 1
                    created = await store_write(
                        store,
                        rows,
                        store.create_task,
                        spec,
                        now=now,  # type: ignore[arg-type]
                        idempotency_key=key,
                        request_hash=request_hash,
                        direct=handoff,
                    )
                    handoff.handed = created.handed
            except Conflict as exc:
                error = exc
            handed = await _handed(notifier, waiter)
            return Outcome(created=created, handed=handed, free=waiter.free, error=error)

    return asyncio.run(scenario())


async def _handed(notifier: Notifier, waiter: Waiter) -> list[Claimed]:
    await asyncio.sleep(0)  # let the delivery scheduled when handing ended run
    handed, on_the_way = notifier.stop_waiting(waiter)
    assert on_the_way == 0
    return handed


@pytest.mark.parametrize("on_loop", [False, True], ids=["in a thread", "on the event loop"])
def test_an_execution_is_leased_to_the_waiting_claim_and_handed_over(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
    on_loop: bool,
) -> None:
    add_agent("a1")
    outcome = create_while_waiting(store, make_spec(), clock.now, on_loop=on_loop)
    assert outcome.created is not None
    [claimed] = outcome.handed
    assert claimed == outcome.created.handed[0]
    assert claimed.plugin_sha256 == demo_plugin.sha256
    execution = store.get_execution(claimed.execution.id)
    assert claimed.execution == execution  # handed over as stored
    assert (execution.status, execution.agent) == (ExecutionStatus.RUNNING, "a1")
    assert execution.lease_expires_at is not None and execution.started_at == clock.now
    [run] = store.list_runs(outcome.created.task.id)
    assert run.status is RunStatus.RUNNING
    assert store.get_task(outcome.created.task.id).status is TaskStatus.RUNNING
    assert outcome.created.task == store.get_task(outcome.created.task.id)  # answered as stored
    assert outcome.free == 1
    # Nothing is left queued for the claim's own store pass.
    assert store.claim("a1", slots=2, now=clock.now, lease_seconds=30).claimed == []


@contextmanager
def statements_of(store: SqlStore) -> Iterator[list[str]]:
    """The SQL statements the store sends meanwhile."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def test_a_handed_create_writes_its_task_run_and_execution_once(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
) -> None:
    """Placed before they are inserted, the task and its run are written running: no UPDATE."""
    add_agent("a1")
    with statements_of(store) as seen:
        outcome = create_while_waiting(store, make_spec(), clock.now)
    assert outcome.created is not None and len(outcome.handed) == 1
    assert not [sql for sql in seen if sql.lstrip().upper().startswith("UPDATE")], seen
    [run] = store.list_runs(outcome.created.task.id)
    assert (run.status, run.started_at) == (RunStatus.RUNNING, clock.now)


def test_a_handed_execution_carries_the_plugin_as_stored_now(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
) -> None:
    """The plugin's hash may be remembered between creates (SQLite), never past a change."""
    add_agent("a1")
    first = create_while_waiting(store, make_spec(), clock.now)
    with statements_of(store) as seen:
        again = create_while_waiting(store, make_spec(), clock.now)
    assert [c.plugin_sha256 for c in first.handed + again.handed] == [demo_plugin.sha256] * 2
    # SQLite's one writer connection remembers the hash; PostgreSQL's replicas read it anew.
    plugin_reads = [sql for sql in seen if "FROM plugins" in sql]
    assert len(plugin_reads) == (0 if store.engine.dialect.name == "sqlite" else 1), seen
    changed = replace(demo_plugin, sha256="b" * 64, source=demo_plugin.source + b"\n")
    store.sync_plugins([changed], now=clock.now)
    [claimed] = create_while_waiting(store, make_spec(), clock.now).handed
    assert claimed.plugin_sha256 == "b" * 64
    store.sync_plugins([], now=clock.now)  # the plugin is gone: nothing to hand over
    gone = create_while_waiting(store, make_spec(), clock.now)
    assert gone.handed == [] and gone.free == 2


def test_a_create_with_nobody_to_go_to_is_written_skipped_once(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    with statements_of(store) as seen:
        created = store.create_task(make_spec(ownership=Ownership.ALL), now=clock.now)
    assert not [sql for sql in seen if sql.lstrip().upper().startswith("UPDATE")], seen
    [run] = store.list_runs(created.task.id)
    assert (run.status, run.reason, run.finished_at) == (
        RunStatus.SKIPPED,
        "no eligible agent",
        clock.now,
    )
    assert created.task == store.get_task(created.task.id)
    assert created.task.status is TaskStatus.FAILED


def test_all_hands_one_execution_to_each_waiting_agent_and_queues_the_rest(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
) -> None:
    add_agent("a1")
    add_agent("a2")
    outcome = create_while_waiting(store, make_spec(ownership=Ownership.ALL), clock.now)
    assert outcome.created is not None
    assert [c.execution.agent for c in outcome.handed] == ["a1"]
    page, _ = store.list_executions(task_id=outcome.created.task.id)
    statuses = sorted((e.agent, e.status) for e in page)
    assert statuses == [("a1", ExecutionStatus.RUNNING), ("a2", ExecutionStatus.QUEUED)]
    assert outcome.created.wake.agents == {"a2"}


@pytest.mark.parametrize("case", ["draining", "no plugin", "no free slot", "other agent"])
def test_nothing_is_handed_over_when_the_claim_may_not_take_it(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
    case: str,
) -> None:
    add_agent("a1", draining=case == "draining")
    add_agent("a2")
    spec = make_spec(ownership=Ownership.SPECIFIC, target="a1")
    if case == "no plugin":
        spec = make_spec(plugin="ghost", ownership=Ownership.SPECIFIC, target="a1")
    waiting = "a2" if case == "other agent" else "a1"
    slots = 0 if case == "no free slot" else 2
    outcome = create_while_waiting(store, spec, clock.now, agent=waiting, slots=slots)
    assert outcome.created is not None
    assert outcome.handed == [] and outcome.created.handed == []
    [execution] = store.list_executions(task_id=outcome.created.task.id)[0]
    assert (execution.status, execution.agent) == (ExecutionStatus.QUEUED, "a1")
    assert outcome.free == slots  # the slot was never taken, or was given back


def test_a_refused_create_takes_no_slot(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
) -> None:
    add_agent("a1")
    store.create_task(make_spec(), now=clock.now, idempotency_key="k", request_hash="h1")
    outcome = create_while_waiting(
        store, make_spec(args=[2]), clock.now, key="k", request_hash="h2"
    )
    assert isinstance(outcome.error, Conflict)
    assert outcome.handed == []
    assert outcome.free == 2


def test_a_reservation_that_is_not_used_gives_the_slot_back_and_wakes_the_claim() -> None:
    # A transaction that fails after reserving (or picks other agents when it is retried).
    async def scenario() -> tuple[int, int, bool, list[Claimed]]:
        notifier = Notifier()
        with notifier.listen("a1", 1) as waiter:
            notifier.wait_open(waiter)
            with notifier.handing(LEASE_SECONDS) as handoff:
                assert handoff.take("a1") and handoff.take("a1")  # a retry reuses the slot
                assert not handoff.take("a1", 2)  # the claim has no second slot
                with notifier.handing(LEASE_SECONDS) as other:
                    assert not other.take("a1")  # its only slot is reserved
                reserved = waiter.reserved
            await asyncio.wait_for(waiter.woken.wait(), 1)
            handed, _ = notifier.stop_waiting(waiter)
            return reserved, waiter.free, waiter.reserved == 0, handed

    assert asyncio.run(scenario()) == (1, 1, True, [])


def test_a_claim_that_stopped_waiting_takes_no_reservation() -> None:
    async def scenario() -> bool:
        notifier = Notifier()
        with notifier.listen("a1", 2) as waiter:
            notifier.wait_open(waiter)
            notifier.stop_waiting(waiter)  # woke up to look at the store itself
            with notifier.handing(LEASE_SECONDS) as handoff:
                return handoff.take("a1")

    assert asyncio.run(scenario()) is False


def _tick_while_waiting(
    store: SqlStore,
    now: object,
    agent: str = "a1",
    slots: int = 2,
    *,
    lead: float = 0.0,
    claim_lead: float = 0.0,
) -> list[Claimed]:
    """One scheduler tick (in a worker thread, as the server runs it; firing ``lead`` seconds
    ahead) while ``agent``'s claim for ``slots`` waits, taking work ``claim_lead`` seconds
    ahead; what the claim was handed."""

    async def scenario() -> list[Claimed]:
        notifier = Notifier()
        scheduler = Scheduler(store, lead_seconds=lead)
        with notifier.listen(agent, slots, claim_lead) as waiter:
            notifier.wait_open(waiter)
            with notifier.handing(LEASE_SECONDS) as handoff:
                tick = await asyncio.to_thread(scheduler.tick, now, handoff)  # type: ignore[arg-type]
                handoff.handed = tick.handed
            return await _handed(notifier, waiter)

    return asyncio.run(scenario())


def test_the_scheduler_hands_a_fired_run_to_a_waiting_claim(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
) -> None:
    add_agent("a1")
    task = store.create_task(make_spec(type=TaskType.INTERVAL, interval_seconds=60), now=clock.now)
    [claimed] = _tick_while_waiting(store, clock.now)
    execution = store.get_execution(claimed.execution.id)
    assert claimed.execution == execution  # handed over as stored
    assert (execution.task_id, execution.status, execution.agent) == (
        task.task.id,
        ExecutionStatus.RUNNING,
        "a1",
    )
    [run] = store.list_runs(task.task.id)
    assert run.status is RunStatus.RUNNING
    assert store.claim("a1", slots=2, now=clock.now, lease_seconds=30).claimed == []


def test_a_jittered_run_is_queued_for_its_time_not_handed_over(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
) -> None:
    add_agent("a1")
    spec = make_spec(type=TaskType.INTERVAL, interval_seconds=60, jitter_seconds=50)
    task = store.create_task(spec, now=clock.now).task
    fire_time = task.next_run_at
    assert fire_time is not None and jitter_seconds_for(task.id, fire_time, 50) > 0
    assert _tick_while_waiting(store, clock.now) == []
    page, _ = store.list_executions(task_id=task.id)
    assert [(e.status, e.not_before > clock.now) for e in page] == [(ExecutionStatus.QUEUED, True)]


def test_one_tick_fills_the_waiting_claims_free_slots_and_queues_the_rest(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
) -> None:
    add_agent("a1")
    spec = make_spec(type=TaskType.INTERVAL, interval_seconds=60)
    ids = [store.create_task(spec, now=clock.now).task.id for _ in range(3)]
    handed = _tick_while_waiting(store, clock.now, slots=2)
    assert len(handed) == 2
    assert [c.execution for c in handed] == [store.get_execution(c.execution.id) for c in handed]
    page, _ = store.list_executions()
    by_task = {e.task_id: e.status for e in page}
    assert set(by_task) == set(ids)
    running = sorted(
        task_id for task_id, status in by_task.items() if status is ExecutionStatus.RUNNING
    )
    assert running == sorted(c.execution.task_id for c in handed)
    assert sorted(by_task.values()) == [ExecutionStatus.QUEUED, *[ExecutionStatus.RUNNING] * 2]
    # What was not handed waits for the claim's next look.
    [queued] = store.claim("a1", slots=2, now=clock.now, lease_seconds=30).claimed
    assert queued.execution.task_id not in running


def test_a_retried_transaction_reuses_its_slots_and_gives_back_what_it_did_not_lease() -> None:
    async def scenario() -> tuple[int, int, int]:
        notifier = Notifier()
        with notifier.listen("a1", 4) as waiter:
            notifier.wait_open(waiter)
            with notifier.handing(LEASE_SECONDS) as handoff:
                for _ in range(2):  # the first attempt, then its retry
                    assert all(handoff.take("a1", nth) for nth in (1, 2, 3))
                during = waiter.free
            await asyncio.wait_for(waiter.woken.wait(), 1)
            notifier.stop_waiting(waiter)
            return during, waiter.free, waiter.reserved

    # Three slots reserved once, none leased (``handed`` stayed empty): all three come back.
    assert asyncio.run(scenario()) == (1, 4, 0)


@pytest.mark.parametrize("claim_lead", [0.0, 0.02, 0.1])
def test_a_run_fired_ahead_is_handed_only_to_a_claim_that_waits_for_its_time(
    store: SqlStore,
    clock: FixedClock,
    make_spec: MakeSpec,
    add_agent: AddAgent,
    demo_plugin: PluginVersion,
    claim_lead: float,
) -> None:
    add_agent("a1")
    spec = make_spec(type=TaskType.SCHEDULED, run_at=clock.now + timedelta(seconds=0.05))
    task = store.create_task(spec, now=clock.now).task
    handed = _tick_while_waiting(store, clock.now, lead=0.1, claim_lead=claim_lead)
    [execution] = store.list_executions(task_id=task.id)[0]
    if claim_lead < 0.05:  # the agent would start it at once, before its fire time
        assert handed == []
        assert execution.status is ExecutionStatus.QUEUED
    else:
        assert [c.execution.id for c in handed] == [execution.id]
        assert execution.status is ExecutionStatus.RUNNING
        assert handed[0].execution.not_before == clock.now + timedelta(seconds=0.05)
