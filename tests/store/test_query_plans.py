"""On SQLite, the writes of the hot paths (bulk create, claim, report, firing) reach their rows
through the primary key or a selective index, never by walking a status's whole backlog.

SQLite keeps no statistics here (no ANALYZE), so its planner guesses between indexes: the
claim's UPDATE of executions it had just chosen by id once walked every queued execution
through the status index, a cost that grew with the backlog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, or_, update

from octopus.core.enums import ExecutionStatus, TaskStatus, TaskType
from octopus.core.models import AgentFacts, Task, TaskSpec
from octopus.server.scheduler import Scheduler
from octopus.store import SqlStore, open_store
from octopus.store.base import Firing, Outcome
from octopus.store.tables import executions
from tests.conftest import FixedClock
from tests.store.conftest import DEMO, LEASE_SECONDS

BACKLOG = 200
Plans = list[tuple[str, list[str]]]


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: FixedClock) -> Iterator[SqlStore]:
    """A migrated SQLite store with the demo plugin, one online agent and a queued backlog."""
    store = open_store(f"sqlite:///{tmp_path / 'octopus.db'}")
    store.migrate()
    store.sync_plugins([DEMO], now=clock.now)
    store.enroll_agent("a1", labels={}, token_hash="hash-a1", now=clock.now)
    facts = AgentFacts(concurrency=8, free_slots=8)
    store.record_heartbeat(
        "a1", facts=facts, labels={}, draining=False, now=clock.now, lease_seconds=LEASE_SECONDS
    )
    store.create_tasks([TaskSpec(name="t", plugin="demo", action="echo")] * BACKLOG, now=clock.now)
    try:
        yield store
    finally:
        store.close()


def plans_of(store: SqlStore, work: Callable[[], Any]) -> Plans:
    """Every data statement ``work`` runs, with SQLite's plan for it."""
    seen: Plans = []

    def record(
        _conn: Any, cursor: Any, statement: str, params: Any, _context: Any, many: bool
    ) -> None:
        if statement.startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            explained = cursor.connection.execute(
                "EXPLAIN QUERY PLAN " + statement, params[0] if many else params
            )
            seen.append((statement, [row[3] for row in explained]))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert seen, "the work ran no statement"
    return seen


def walks_a_backlog(plan: list[str]) -> bool:
    """A step that reads a whole table, or executions of one status whatever else is known."""
    return any(
        step.startswith("SCAN") or ("executions" in step and step.endswith("(status=?)"))
        for step in plan
    )


def badly_planned_writes(plans: Plans) -> list[tuple[str, list[str]]]:
    return [
        (statement, plan)
        for statement, plan in plans
        if statement.startswith(("UPDATE", "DELETE")) and walks_a_backlog(plan)
    ]


def test_the_check_sees_a_write_that_walks_the_backlog(sqlite_store: SqlStore) -> None:
    def walk() -> None:  # the claim's UPDATE as it was, guarded on status and agent
        stmt = (
            update(executions)
            .where(
                executions.c.id.in_(range(1, 51)),
                executions.c.status.in_([ExecutionStatus.QUEUED.value]),
                or_(executions.c.agent == "a1", executions.c.agent.is_(None)),
            )
            .values(attempt=executions.c.attempt)
        )
        with sqlite_store.engine.begin() as conn:
            conn.execute(stmt)

    assert badly_planned_writes(plans_of(sqlite_store, walk))


def test_claims_and_reports_write_by_primary_key(sqlite_store: SqlStore, clock: FixedClock) -> None:
    claimed: list[int] = []

    def claim() -> None:
        result = sqlite_store.claim("a1", slots=50, now=clock.now, lease_seconds=LEASE_SECONDS)
        claimed.extend(c.execution.id for c in result.claimed)

    def report() -> None:
        outcome = Outcome(status=ExecutionStatus.SUCCEEDED, started_at=clock.now)
        sqlite_store.finish_executions("a1", [(i, outcome) for i in claimed], now=clock.now)

    assert badly_planned_writes(plans_of(sqlite_store, claim)) == []
    assert len(claimed) == 50
    assert badly_planned_writes(plans_of(sqlite_store, report)) == []
    assert sqlite_store.status_counts().executions[ExecutionStatus.SUCCEEDED] == 50


def test_bulk_creates_and_firings_write_by_primary_key(
    sqlite_store: SqlStore, clock: FixedClock
) -> None:
    every = TaskSpec(
        name="i", plugin="demo", action="echo", type=TaskType.INTERVAL, interval_seconds=1.0
    )
    tasks: list[Task] = []

    def create() -> None:
        tasks.extend(sqlite_store.create_tasks([every] * 20, now=clock.now).tasks)

    def fire() -> None:
        firings = []
        for task in tasks:
            assert task.next_run_at is not None
            later = task.next_run_at + timedelta(seconds=1)
            fire = [(task.next_run_at, None)]
            firings.append(
                (task.id, Firing(expected=task.next_run_at, fire=fire, next_run_at=later))
            )
        fired = sqlite_store.fire_due(firings, now=clock.now)
        assert len(fired.runs) == len(tasks)

    assert badly_planned_writes(plans_of(sqlite_store, create)) == []
    assert badly_planned_writes(plans_of(sqlite_store, fire)) == []


def test_the_scheduler_reads_due_tasks_by_fire_time(
    sqlite_store: SqlStore, clock: FixedClock
) -> None:
    """Each tick's reads use ``(status, next_run_at)``: reading every active task (or every
    task without a fire time, as finished ones are) cost each tick more as tasks grew."""

    def by_fire_time(plans: Plans) -> bool:
        steps = [step for _, plan in plans for step in plan]
        return bool(steps) and all(
            "ix_tasks_status_next_run_at" in step for step in steps if "tasks" in step
        )

    due = plans_of(sqlite_store, lambda: sqlite_store.due_tasks(now=clock.now, limit=200))
    assert len(due) == 2  # not yet planned, then due
    assert by_fire_time(due), due
    tick = plans_of(sqlite_store, lambda: Scheduler(sqlite_store).tick(clock.now))
    by_time = [(sql, plan) for sql, plan in tick if "next_run_at" in sql]
    assert len(by_time) == 3  # not yet planned, due, the soonest fire time ahead
    assert by_fire_time(by_time), tick
    assert not any(walks_a_backlog(plan) for _, plan in tick), tick


def test_cancelling_a_task_writes_its_own_executions_only(
    sqlite_store: SqlStore, clock: FixedClock
) -> None:
    [task] = sqlite_store.create_tasks(
        [TaskSpec(name="c", plugin="demo", action="echo")], now=clock.now
    ).tasks

    plans = plans_of(sqlite_store, lambda: sqlite_store.cancel_task(task.id, now=clock.now))

    assert badly_planned_writes(plans) == []
    assert sqlite_store.get_task(task.id).status is TaskStatus.CANCELLED
    assert sqlite_store.status_counts().executions[ExecutionStatus.QUEUED] == BACKLOG


def test_a_claim_finds_pending_cancels_among_marked_executions_only(
    sqlite_store: SqlStore, clock: FixedClock
) -> None:
    sqlite_store.claim("a1", slots=50, now=clock.now, lease_seconds=LEASE_SECONDS)  # 50 running

    def claim() -> None:
        sqlite_store.claim("a1", slots=1, now=clock.now, lease_seconds=LEASE_SECONDS)

    cancels = [
        plan
        for statement, plan in plans_of(sqlite_store, claim)
        if "cancel_requested IS" in statement
    ]
    assert cancels == [["SEARCH executions USING INDEX ix_executions_cancel_requested (agent=?)"]]


def _agent_reads(plans: Plans) -> list[list[str]]:
    return [plan for statement, plan in plans if "FROM agents" in statement]


def test_one_new_run_finds_an_idle_agent_in_one_indexed_read(
    sqlite_store: SqlStore, clock: FixedClock
) -> None:
    # a1 holds the backlog; a2 is idle, so the first page of idle agents has the answer.
    facts = AgentFacts(concurrency=8, free_slots=8)
    sqlite_store.enroll_agent("a2", labels={}, token_hash="hash-a2", now=clock.now)
    sqlite_store.record_heartbeat(
        "a2", facts=facts, labels={}, draining=False, now=clock.now, lease_seconds=LEASE_SECONDS
    )
    spec = TaskSpec(name="t", plugin="demo", action="echo")
    plans = plans_of(sqlite_store, lambda: sqlite_store.create_task(spec, now=clock.now))
    [read] = _agent_reads(plans)
    assert read[0] == (
        "SEARCH agents USING INDEX ix_agents_status_concurrency_name "
        "(status=? AND concurrency=? AND name>?)"
    ), read
    assert (
        "SEARCH executions USING INDEX ix_executions_status_agent_id (status=? AND agent=?)" in read
    )


def test_one_new_run_among_busy_agents_reads_no_whole_table(
    sqlite_store: SqlStore, clock: FixedClock
) -> None:
    spec = TaskSpec(name="t", plugin="demo", action="echo")
    plans = plans_of(sqlite_store, lambda: sqlite_store.create_task(spec, now=clock.now))
    reads = _agent_reads(plans)
    assert len(reads) >= 2, reads  # the idle page came back empty: the busy ones are read
    assert not any(step.startswith("SCAN agents") for plan in reads for step in plan), reads
    counted = [step for plan in reads for step in plan if "executions" in step]
    assert any(step.endswith("(status=? AND agent>?)") for step in counted), reads


def test_the_dashboards_change_marks_read_no_whole_table(sqlite_store: SqlStore) -> None:
    # Polled every half second while a dashboard is open: a walk of the executions' index
    # took 600 ms with 1,000,000 executions.
    plans = plans_of(sqlite_store, sqlite_store.change_marks)
    walks = [
        (statement, plan)
        for statement, plan in plans
        if any(step.startswith("SCAN") and "agents" not in step for step in plan)
    ]
    assert not walks, walks
