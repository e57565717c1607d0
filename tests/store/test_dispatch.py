"""Firing an adhoc task: who gets its executions for each ownership."""

from __future__ import annotations

from collections.abc import Callable

from octopus.core.enums import ExecutionStatus, Ownership, RunStatus, TaskStatus
from octopus.core.models import TaskSpec
from octopus.store import SqlStore
from octopus.store.base import Wake
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent

MakeSpec = Callable[..., TaskSpec]


def _executions(store: SqlStore, task_id: int) -> list[tuple[str | None, ExecutionStatus]]:
    page, _ = store.list_executions(task_id=task_id)
    return sorted(((e.agent, e.status) for e in page), key=lambda pair: str(pair[0]))


def test_all_queues_one_execution_per_online_matching_agent(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec, add_agent: AddAgent
) -> None:
    add_agent("a1", zone="eu")
    add_agent("a2", zone="eu", gpu="yes")
    add_agent("a3", zone="us")
    add_agent("a4", zone="eu", draining=True)
    created = store.create_task(
        make_spec(ownership=Ownership.ALL, labels={"zone": "eu"}), now=clock.now
    )
    queued = ExecutionStatus.QUEUED
    assert _executions(store, created.task.id) == [("a1", queued), ("a2", queued)]
    assert created.wake == Wake(agents=frozenset({"a1", "a2"}))


def test_all_without_eligible_agent_is_skipped_and_the_task_fails(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec, add_agent: AddAgent
) -> None:
    add_agent("a1", zone="us")
    created = store.create_task(
        make_spec(ownership=Ownership.ALL, labels={"zone": "eu"}), now=clock.now
    )
    [run] = store.list_runs(created.task.id)
    assert (run.status, run.reason) == (RunStatus.SKIPPED, "no eligible agent")
    assert run.finished_at == clock.now
    assert created.task.status is TaskStatus.FAILED
    assert created.task.last_run_status is RunStatus.SKIPPED
    assert _executions(store, created.task.id) == []


def test_anyone_goes_to_the_least_loaded_matching_agent(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec, add_agent: AddAgent
) -> None:
    add_agent("busy", concurrency=2, zone="eu")
    add_agent("idle", concurrency=2, zone="eu")
    add_agent("wrong", concurrency=8, zone="us")
    store.create_task(make_spec(ownership=Ownership.SPECIFIC, target="busy"), now=clock.now)
    created = store.create_task(make_spec(labels={"zone": "eu"}), now=clock.now)
    assert _executions(store, created.task.id) == [("idle", ExecutionStatus.QUEUED)]
    assert created.wake == Wake(agents=frozenset({"idle"}))


def test_anyone_stays_unassigned_when_no_agent_is_online(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec, add_agent: AddAgent
) -> None:
    add_agent("away", draining=True)
    created = store.create_task(make_spec(), now=clock.now)
    assert _executions(store, created.task.id) == [(None, ExecutionStatus.QUEUED)]
    assert created.wake == Wake(anyone=True)
    assert created.task.status is TaskStatus.PENDING


def test_specific_is_queued_for_its_target_even_when_unknown_or_offline(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    created = store.create_task(
        make_spec(ownership=Ownership.SPECIFIC, target="elsewhere"), now=clock.now
    )
    assert _executions(store, created.task.id) == [("elsewhere", ExecutionStatus.QUEUED)]
    assert created.wake == Wake(agents=frozenset({"elsewhere"}))
