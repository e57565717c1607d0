"""Scheduler.tick(now) on a real store (SQLite and PostgreSQL) with a fixed clock: overlap and
missed-run policies, pause and resume, edits, end_at, max_runs, jitter and idempotent firing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from octopus.core.enums import (
    AgentStatus,
    ExecutionStatus,
    MissedPolicy,
    OverlapPolicy,
    Ownership,
    RunStatus,
    TaskStatus,
    TaskType,
)
from octopus.core.models import AgentFacts, Run, Task, TaskSpec
from octopus.core.plan import next_after
from octopus.core.timing import jitter_seconds_for
from octopus.server.scheduler import Scheduler
from octopus.store import SqlStore, open_store
from octopus.store.base import Outcome, PluginVersion
from tests.conftest import EPOCH, FixedClock

MakeSpec = Callable[..., TaskSpec]
DEMO = PluginVersion(
    name="demo", sha256="a" * 64, source=b"def echo(x):\n    return x\n", actions=()
)
LEASE = 3600.0


@pytest.fixture
def online(store: SqlStore, clock: FixedClock) -> str:
    """One online agent ``a1`` (concurrency 4) and the ``demo`` plugin."""
    store.sync_plugins([DEMO], now=clock.now)
    store.enroll_agent("a1", labels={}, token_hash="hash-a1", now=clock.now)
    facts = AgentFacts(concurrency=4, free_slots=4)
    store.record_heartbeat(
        "a1", facts=facts, labels={}, draining=False, now=clock.now, lease_seconds=LEASE
    )
    return "a1"


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def every(store: SqlStore, make_spec: MakeSpec, seconds: float = 10, **fields: object) -> Task:
    spec = make_spec(type=TaskType.INTERVAL, interval_seconds=seconds, **fields)
    return store.create_task(spec, now=EPOCH).task


def runs_of(store: SqlStore, task_id: int) -> list[Run]:
    return sorted(store.list_runs(task_id, limit=1000), key=lambda run: (run.fire_time, run.id))


def finish_all(store: SqlStore, now: datetime) -> None:
    """Claim and succeed every queued execution on ``a1``."""
    for claimed in store.claim("a1", slots=50, now=now, lease_seconds=LEASE).claimed:
        outcome = Outcome(status=ExecutionStatus.SUCCEEDED, result=1)
        store.finish_execution(claimed.execution.id, agent="a1", outcome=outcome, now=now)


def statuses(store: SqlStore, task_id: int) -> list[tuple[float, RunStatus]]:
    return [
        ((run.fire_time - EPOCH).total_seconds(), run.status) for run in runs_of(store, task_id)
    ]


def test_interval_is_fixed_rate_and_fires_on_its_schedule(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec)
    scheduler = Scheduler(store)
    assert [r.fire_time for r in scheduler.tick(at(0)).runs] == [at(0)]
    assert scheduler.tick(at(5)).runs == []
    finish_all(store, at(1))
    tick = scheduler.tick(at(10.4))
    assert [r.fire_time for r in tick.runs] == [at(10)]  # the schedule's time, not the tick's
    assert tick.wake.agents == frozenset({"a1"}) or tick.wake.anyone
    after = store.get_task(task.id)
    assert (after.status, after.next_run_at, after.run_count) == (TaskStatus.ACTIVE, at(20), 2)
    assert tick.next_due == at(20)


def test_scheduled_task_fires_once_at_its_time(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    spec = make_spec(type=TaskType.SCHEDULED, run_at=at(30))
    task = store.create_task(spec, now=EPOCH).task
    assert (task.status, task.next_run_at) == (TaskStatus.SCHEDULED, at(30))
    scheduler = Scheduler(store)
    assert scheduler.tick(at(29.999)).runs == []
    assert [r.fire_time for r in scheduler.tick(at(30)).runs] == [at(30)]
    assert scheduler.tick(at(31)).runs == []
    assert store.get_task(task.id).status is TaskStatus.PENDING


def test_overlap_skip_records_a_skipped_run_with_its_reason(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec)
    scheduler = Scheduler(store)
    scheduler.tick(at(0))
    [skipped] = scheduler.tick(at(10)).runs
    assert skipped.status is RunStatus.SKIPPED
    assert skipped.reason is not None and "overlap" in skipped.reason
    assert store.get_task(task.id).last_run_status is RunStatus.SKIPPED
    finish_all(store, at(11))
    assert [r.status for r in scheduler.tick(at(20)).runs] == [RunStatus.PENDING]


def test_overlap_queue_one_keeps_one_run_waiting(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec, overlap_policy=OverlapPolicy.QUEUE_ONE)
    scheduler = Scheduler(store)
    scheduler.tick(at(0))
    [queued] = scheduler.tick(at(10)).runs
    assert queued.status is RunStatus.PENDING and "queued" in (queued.reason or "")
    assert store.list_executions(run_ids=[queued.id])[1] == 0
    [skipped] = scheduler.tick(at(20)).runs
    assert skipped.status is RunStatus.SKIPPED
    finish_all(store, at(21))
    [released] = scheduler.tick(at(21)).runs
    assert released.id == queued.id and released.fire_time == at(10)
    assert store.list_executions(run_ids=[queued.id])[1] == 1
    assert store.get_task(task.id).waiting_run_id is None


def test_overlap_allow_fires_alongside(store: SqlStore, online: str, make_spec: MakeSpec) -> None:
    task = every(store, make_spec, overlap_policy=OverlapPolicy.ALLOW)
    scheduler = Scheduler(store)
    scheduler.tick(at(0))
    scheduler.tick(at(10))
    assert statuses(store, task.id) == [(0, RunStatus.PENDING), (10, RunStatus.PENDING)]


def test_overlap_cancel_previous_cancels_then_fires(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec, overlap_policy=OverlapPolicy.CANCEL_PREVIOUS)
    scheduler = Scheduler(store)
    scheduler.tick(at(0))
    [fired] = scheduler.tick(at(10)).runs
    assert statuses(store, task.id) == [(0, RunStatus.CANCELLED), (10, RunStatus.PENDING)]
    assert "cancelled run" in (fired.reason or "")


def test_cancel_previous_flags_a_running_execution_for_stopping(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    every(store, make_spec, overlap_policy=OverlapPolicy.CANCEL_PREVIOUS)
    scheduler = Scheduler(store)
    scheduler.tick(at(0))
    [claimed] = store.claim("a1", slots=1, now=at(1), lease_seconds=LEASE).claimed
    tick = scheduler.tick(at(10))
    assert "a1" in tick.wake.agents
    assert store.claim("a1", slots=0, now=at(10), lease_seconds=LEASE).cancel == [
        claimed.execution.id
    ]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            MissedPolicy.RUN_ONCE,
            [(10, RunStatus.MISSED), (20, RunStatus.MISSED), (30, RunStatus.PENDING)],
        ),
        (
            MissedPolicy.SKIP,
            [(10, RunStatus.MISSED), (20, RunStatus.MISSED), (30, RunStatus.MISSED)],
        ),
    ],
)
def test_missed_runs_after_downtime_are_recorded(
    store: SqlStore,
    online: str,
    make_spec: MakeSpec,
    policy: MissedPolicy,
    expected: list[tuple[float, RunStatus]],
) -> None:
    task = every(store, make_spec, missed_policy=policy)
    scheduler = Scheduler(store)
    scheduler.tick(at(0))
    finish_all(store, at(1))
    Scheduler(store).tick(at(35))  # the server was down from 1 s to 35 s
    assert statuses(store, task.id)[1:] == expected
    missed = [r for r in runs_of(store, task.id) if r.status is RunStatus.MISSED]
    assert all("missed" in (r.reason or "") for r in missed)
    assert store.get_task(task.id).next_run_at == at(40)


def test_missed_run_all_is_bounded(store: SqlStore, online: str, make_spec: MakeSpec) -> None:
    task = every(
        store, make_spec, missed_policy=MissedPolicy.RUN_ALL, overlap_policy=OverlapPolicy.ALLOW
    )
    scheduler = Scheduler(store, run_all_limit=2)
    scheduler.tick(at(0))
    scheduler.tick(at(35))
    after_zero = [status for _, status in statuses(store, task.id)[1:]]
    assert after_zero.count(RunStatus.PENDING) == 2
    assert after_zero.count(RunStatus.MISSED) == 1


def test_pause_and_resume_record_the_firings_missed_while_paused(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec)
    scheduler = Scheduler(store)
    scheduler.tick(at(0))
    finish_all(store, at(1))
    store.pause_task(task.id, now=at(5))
    assert scheduler.tick(at(25)).runs == []
    store.resume_task(task.id, now=at(25))
    fired = scheduler.tick(at(25)).runs
    assert [(r.fire_time, r.status) for r in fired] == [
        (at(10), RunStatus.MISSED),
        (at(20), RunStatus.PENDING),
    ]
    assert store.get_task(task.id).next_run_at == at(30)


def test_an_edit_takes_effect_at_once(store: SqlStore, online: str, make_spec: MakeSpec) -> None:
    task = every(store, make_spec, seconds=60)
    scheduler = Scheduler(store)
    scheduler.tick(at(0))
    finish_all(store, at(1))
    spec = make_spec(type=TaskType.INTERVAL, interval_seconds=5)
    nxt = next_after(spec, created_at=task.created_at, run_count=1, after=at(2))
    edited = store.update_task(task.id, spec, next_run_at=nxt, now=at(2))
    assert edited.next_run_at == at(5)
    assert [r.fire_time for r in scheduler.tick(at(5)).runs] == [at(5)]


def test_end_at_ends_the_task(store: SqlStore, online: str, make_spec: MakeSpec) -> None:
    task = every(store, make_spec, end_at=at(25), overlap_policy=OverlapPolicy.ALLOW)
    scheduler = Scheduler(store)
    for moment in (0, 10, 20):
        scheduler.tick(at(moment))
    after = store.get_task(task.id)
    assert (after.status, after.next_run_at, after.run_count) == (TaskStatus.SUCCEEDED, None, 3)
    assert scheduler.tick(at(30)).runs == []


def test_max_runs_ends_the_task(store: SqlStore, online: str, make_spec: MakeSpec) -> None:
    task = every(store, make_spec, max_runs=2, overlap_policy=OverlapPolicy.ALLOW)
    scheduler = Scheduler(store)
    scheduler.tick(at(0))
    scheduler.tick(at(10))
    after = store.get_task(task.id)
    assert (after.status, after.next_run_at, after.run_count) == (TaskStatus.SUCCEEDED, None, 2)
    assert len(runs_of(store, task.id)) == 2


def test_schedules_ending_in_the_same_tick_all_end(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    """Tasks whose schedules run out together are ended in one write of the tick."""
    by_count = [every(store, make_spec, max_runs=1) for _ in range(2)]
    by_end = [every(store, make_spec, end_at=at(5)) for _ in range(2)]
    tick = Scheduler(store).tick(at(0))
    assert len(tick.runs) == 4
    for task in by_count + by_end:
        after = store.get_task(task.id)
        assert (after.status, after.next_run_at, after.run_count) == (
            TaskStatus.SUCCEEDED,
            None,
            1,
        )


def test_jitter_delays_the_start_not_the_fire_time(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec, jitter_seconds=5)
    [run] = Scheduler(store).tick(at(0)).runs
    assert run.fire_time == at(0)
    [execution], _ = store.list_executions(run_ids=[run.id])
    delay = jitter_seconds_for(task.id, at(0), 5)
    assert execution.not_before == at(delay)
    assert store.claim("a1", slots=1, now=at(0), lease_seconds=LEASE).claimed == [] or (delay == 0)


def test_run_now_fires_once_outside_the_schedule(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec, seconds=3600)
    Scheduler(store).tick(at(0))
    fired = store.run_now(task.id, now=at(7))
    [run] = fired.runs
    assert (run.fire_time, run.reason) == (at(7), "run now")
    assert store.get_task(task.id).run_count == 1


def test_two_schedulers_ticking_the_same_instant_fire_once(
    store: SqlStore, online: str, make_spec: MakeSpec, database_url: str
) -> None:
    task = every(store, make_spec)
    replica = open_store(database_url)
    try:
        first, second = Scheduler(store), Scheduler(replica)
        results: list[int] = []
        barrier = threading.Barrier(2)

        def tick(scheduler: Scheduler) -> None:
            barrier.wait()
            results.append(len(scheduler.tick(at(0)).runs))

        threads = [threading.Thread(target=tick, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        replica.close()
    assert sorted(results) == [0, 1]
    assert len(runs_of(store, task.id)) == 1


def test_a_restart_mid_tick_does_not_fire_twice(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec)
    stale = store.get_task(task.id)
    decision = Scheduler(store).firing(stale, at(0))
    assert len(store.fire_due([(task.id, decision)], now=at(0)).runs) == 1
    # A scheduler that crashed after committing retries its decision, then ticks afresh.
    assert store.fire_due([(task.id, decision)], now=at(0)).runs == []
    assert Scheduler(store).tick(at(0)).runs == []
    assert len(runs_of(store, task.id)) == 1


def test_a_cron_task_is_planned_at_creation(store: SqlStore, make_spec: MakeSpec) -> None:
    spec = make_spec(type=TaskType.CRON, cron="*/5 * * * *", timezone="Europe/London")
    task = store.create_task(spec, now=at(1)).task
    assert task.next_run_at == at(300)


def test_delay_sleeps_until_the_due_instant_capped() -> None:
    scheduler = Scheduler(store=None, max_sleep_seconds=1.0)  # type: ignore[arg-type]
    assert scheduler.delay(at(0.25), at(0)) == pytest.approx(0.25)
    assert scheduler.delay(at(30), at(0)) == 1.0
    assert scheduler.delay(None, at(0)) == 1.0
    assert scheduler.delay(at(0), at(1)) == 0.0


def heartbeat(store: SqlStore, name: str, now: datetime) -> None:
    facts = AgentFacts(concurrency=4, free_slots=4)
    store.record_heartbeat(
        name, facts=facts, labels={}, draining=False, now=now, lease_seconds=LEASE
    )


def test_each_firing_of_an_all_task_takes_the_agents_online_then(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec, ownership=Ownership.ALL, overlap_policy=OverlapPolicy.ALLOW)
    scheduler = Scheduler(store)
    [first] = scheduler.tick(at(0)).runs
    store.enroll_agent("a2", labels={}, token_hash="hash-a2", now=at(5))
    heartbeat(store, "a2", at(5))
    heartbeat(store, "a1", at(5))
    [second] = scheduler.tick(at(10)).runs
    executions, _ = store.list_executions(task_id=task.id, limit=100)
    agents_of = {run.id: sorted(e.agent or "" for e in executions if e.run_id == run.id)
                 for run in (first, second)}  # fmt: skip
    assert agents_of == {first.id: ["a1"], second.id: ["a1", "a2"]}


def test_a_specific_run_waits_for_its_offline_agent(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec, ownership=Ownership.SPECIFIC, target="a1", start_at=at(1000))
    scheduler = Scheduler(store)
    store.reap(now=at(1000), client_timeout=30)  # a1 silent since EPOCH: offline
    assert store.get_agent("a1").status is AgentStatus.OFFLINE
    [run] = scheduler.tick(at(1000)).runs
    [queued] = store.list_executions(run_ids=[run.id], limit=10)[0]
    assert (queued.agent, queued.status) == ("a1", ExecutionStatus.QUEUED)
    heartbeat(store, "a1", at(1001))
    [claimed] = store.claim("a1", slots=4, now=at(1001), lease_seconds=LEASE).claimed
    assert claimed.execution.id == queued.id
    assert statuses(store, task.id) == [(1000.0, RunStatus.RUNNING)]


def test_with_a_lead_a_run_fires_ahead_but_becomes_claimable_at_its_time(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    task = every(store, make_spec)
    scheduler = Scheduler(store, lead_seconds=0.05)
    assert [r.fire_time for r in scheduler.tick(at(0)).runs] == [at(0)]
    finish_all(store, at(1))
    assert scheduler.tick(at(9.94)).runs == []  # 60 ms ahead: beyond the lead
    assert scheduler.delay(at(10), now=at(9.94)) == pytest.approx(0.01)
    [run] = scheduler.tick(at(9.97)).runs  # 30 ms ahead: fired now, at its own time
    assert (run.fire_time, store.get_task(task.id).next_run_at) == (at(10), at(20))
    [execution] = store.list_executions(task_id=task.id, run_ids=[run.id])[0]
    assert (execution.queued_at, execution.not_before) == (at(9.97), at(10))
    # An agent that does not wait cannot take it before its time; one that waits can.
    assert store.claim("a1", slots=5, now=at(9.97), lease_seconds=LEASE).claimed == []
    ahead = store.claim("a1", slots=5, now=at(9.97), lease_seconds=LEASE, lead_seconds=0.02)
    assert ahead.claimed == []
    [claimed] = store.claim(
        "a1", slots=5, now=at(9.97), lease_seconds=LEASE, lead_seconds=0.05
    ).claimed
    assert claimed.execution.id == execution.id


def test_a_lead_does_not_make_a_run_missed_or_late(
    store: SqlStore, online: str, make_spec: MakeSpec
) -> None:
    spec = make_spec(type=TaskType.SCHEDULED, run_at=at(30), missed_policy=MissedPolicy.SKIP)
    store.create_task(spec, now=EPOCH)
    [run] = Scheduler(store, lead_seconds=0.05).tick(at(29.96)).runs
    assert (run.fire_time, run.status, run.reason) == (at(30), RunStatus.PENDING, None)
