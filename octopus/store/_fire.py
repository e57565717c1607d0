"""Firing a run: snapshot the eligible agents and queue its executions, or lease them at
once to agents whose claims are waiting (the hand-off)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert

from octopus.core.dispatch import AgentLoad, eligible, least_loaded
from octopus.core.enums import AgentStatus, ExecutionStatus, Ownership, RunStatus
from octopus.core.models import Execution, TaskSpec
from octopus.core.states import RUN_TERMINAL
from octopus.store import _lookup as lookup
from octopus.store import _prepared as prepared
from octopus.store._dialect import insert_returning_ids
from octopus.store._plugins import plugin_sha256
from octopus.store._settle import (
    move_run,
    settle_task,
    settle_tasks,
    settle_tasks_alike,
    start_runs,
    wake_for,
)
from octopus.store.base import Claimed, Direct, Wake
from octopus.store.tables import executions, runs

NO_ELIGIBLE_AGENT = "no eligible agent"


@dataclass(slots=True)
class Placement:
    """Where one run's executions go: rows to queue, rows leased at once, whom to wake."""

    queued: list[dict[str, Any]] = field(default_factory=list)
    leased: list[tuple[dict[str, Any], TaskSpec]] = field(default_factory=list)
    wake: Wake = field(default_factory=Wake)

    @property
    def nobody(self) -> bool:
        """No agent to go to: the run is skipped."""
        return not self.queued and not self.leased

    @property
    def run_status(self) -> RunStatus:
        """The status the run takes once placed: skipped with nobody to go to, running when
        an execution is leased at once, else pending."""
        if self.nobody:
            return RunStatus.SKIPPED
        return RunStatus.RUNNING if self.leased else RunStatus.PENDING

    def assign(self, run_id: int, task_id: int) -> None:
        """Name the run and task of executions placed before either was inserted."""
        for row in (*self.queued, *(row for row, _ in self.leased)):
            row["run_id"], row["task_id"] = run_id, task_id


class Dispatch:
    """Placing the runs fired in one transaction, counting the work handed out so far, so
    ``anyone`` runs spread over the agents as they would one by one; with ``direct``,
    executions for agents whose claims wait are leased to them at once and collected in
    ``handed`` (after the transaction commits, the server hands them over).

    The first ``anyone`` or ``specific`` run looks its agent up alone (``store._lookup``);
    from the second run on, or for an ``all`` run, the dispatch reads every agent once and
    places the rest over that snapshot."""

    def __init__(self, conn: Connection, direct: Direct | None = None) -> None:
        self._conn = conn
        self._direct = direct
        self._snapshot: dict[str, AgentLoad] | None = None
        self._looked_up: dict[str, AgentLoad] = {}
        """The agent the first run's look-up found, with that run counted."""
        self._placed = 0
        self._sha256: dict[str, str | None] = {}
        self._leased_to: dict[str, int] = {}
        self.handed: list[Claimed] = []
        self.moved: dict[int, RunStatus] = {}
        """Task id -> the status its new run moved to once placed (skipped: nobody to go to;
        running: leased at once), for a caller that knows what it inserted."""

    def place(
        self,
        run_id: int,
        task_id: int,
        spec: TaskSpec,
        *,
        now: datetime,
        not_before: datetime | None = None,
    ) -> Placement:
        """The executions of a new run of ``spec``; work that may start now can be leased."""
        placement = Placement()
        for agent in self._targets(spec):
            row = execution_row(run_id, task_id, spec, agent, now=now, not_before=not_before)
            ahead = max(0.0, (row["not_before"] - now).total_seconds())
            sha256 = self._handed_to(agent, spec, ahead)
            if sha256 is None:
                placement.queued.append(row)
                placement.wake |= wake_for(agent)
                continue
            assert self._direct is not None  # _handed_to answers None without it
            lease = now + timedelta(seconds=self._direct.lease_seconds)
            leased = {
                **row,
                "status": ExecutionStatus.RUNNING.value,
                "started_at": now,
                "lease_expires_at": lease,
                "plugin_sha256": sha256,
            }
            placement.leased.append((leased, spec))
        return placement

    def lease(
        self,
        leased: Sequence[tuple[dict[str, Any], TaskSpec]],
        *,
        now: datetime,
        start_runs_too: bool = True,
    ) -> None:
        """Insert executions already leased to their agents (from ``place``), start their
        runs (unless they were inserted running), and add them to ``handed``."""
        if not leased:
            return
        rows = [row for row, _ in leased]
        ids = insert_returning_ids(self._conn, executions, rows)
        started = [_as_leased(id_, row) for id_, row in zip(ids, rows, strict=True)]
        if start_runs_too:
            start_runs(self._conn, (execution.run_id for execution in started), now=now)
        self.moved.update((execution.task_id, RunStatus.RUNNING) for execution in started)
        self.handed += [
            Claimed(
                execution=execution,
                plugin=spec.plugin,
                action=spec.action,
                args=list(spec.args),
                kwargs=dict(spec.kwargs),
                timeout_seconds=spec.timeout_seconds,
                plugin_sha256=row["plugin_sha256"],
            )
            for execution, (row, spec) in zip(started, leased, strict=True)
        ]

    def _handed_to(self, agent: str | None, spec: TaskSpec, ahead: float) -> str | None:
        """The plugin's sha256 if the execution, which may start in ``ahead`` seconds, can be
        leased to ``agent`` at once: the agent is online, the plugin exists, and one of the
        agent's claims is waiting with a free slot and takes work that far ahead (a slot is
        then reserved); None otherwise. An agent's work beyond its claim's free slots is
        queued (its next claim takes it)."""
        load = self._load_of(agent) if agent is not None else None
        if self._direct is None or load is None or load.status is not AgentStatus.ONLINE:
            return None
        if spec.plugin not in self._sha256:
            self._sha256[spec.plugin] = plugin_sha256(self._conn, spec.plugin)
        sha256 = self._sha256[spec.plugin]
        nth = self._leased_to.get(load.name, 0) + 1
        if sha256 is None or not self._direct.take(load.name, nth, ahead):
            return None
        self._leased_to[load.name] = nth
        return sha256

    def _targets(self, spec: TaskSpec) -> list[str | None]:
        """Whom a new run of ``spec`` goes to; None stands for an unassigned execution."""
        self._placed += 1
        if self._placed == 1 and spec.ownership is not Ownership.ALL:
            return [self._look_up(spec)]
        loads = self._loads()
        names: list[str | None]
        if spec.ownership is Ownership.SPECIFIC:
            names = [spec.target]
        elif spec.ownership is Ownership.ALL:
            names = [a.name for a in eligible(loads.values(), spec.labels)]
        else:
            names = [least_loaded(loads.values(), spec.labels)]
        for name in names:
            if name is not None and name in loads:
                loads[name] = _one_more(loads[name])
        return names

    def _look_up(self, spec: TaskSpec) -> str | None:
        """The first run's agent, read alone; it is counted as it is in the snapshot."""
        name: str | None
        if spec.ownership is Ownership.SPECIFIC:
            assert spec.target is not None  # a specific task names its target
            name, load = spec.target, lookup.named(self._conn, spec.target)
        else:
            load = lookup.least_loaded_agent(self._conn, spec.labels)
            name = None if load is None else load.name
        if load is not None:
            self._looked_up[load.name] = _one_more(load)
        return name

    def _loads(self) -> dict[str, AgentLoad]:
        """Every agent with its load, read on first use, counting what was placed before."""
        if self._snapshot is None:
            self._snapshot = {load.name: load for load in lookup.every_agent(self._conn)}
            for name, counted in self._looked_up.items():
                if name in self._snapshot:
                    self._snapshot[name] = counted
        return self._snapshot

    def _load_of(self, agent: str) -> AgentLoad | None:
        if self._snapshot is not None:
            return self._snapshot.get(agent)
        return self._looked_up.get(agent)


def _one_more(load: AgentLoad) -> AgentLoad:
    return replace(load, assigned=load.assigned + 1)


def _as_leased(execution_id: int, row: dict[str, Any]) -> Execution:
    """An execution ``Dispatch.place`` leased, as its row now reads (times in UTC): built from
    what was written, as its insert returning every column converted back cost a hand-off
    0.1 ms after an idle pause here."""
    return Execution(
        id=execution_id,
        run_id=row["run_id"],
        task_id=row["task_id"],
        ownership=Ownership(row["ownership"]),
        agent=row["agent"],
        attempt=row["attempt"],
        retry_of=None,
        status=ExecutionStatus(row["status"]),
        not_before=row["not_before"].astimezone(UTC),
        lease_expires_at=row["lease_expires_at"].astimezone(UTC),
        plugin_sha256=row["plugin_sha256"],
        result=None,
        error=None,
        queued_at=row["queued_at"].astimezone(UTC),
        started_at=row["started_at"].astimezone(UTC),
        finished_at=None,
    )


def fire(
    conn: Connection,
    task_id: int,
    spec: TaskSpec,
    *,
    fire_time: datetime,
    now: datetime,
    reason: str | None = None,
    not_before: datetime | None = None,
    plan: Dispatch | None = None,
) -> tuple[int, Wake]:
    """Insert a run of the task at ``fire_time`` with its executions; the run's id and whom to wake.

    A run with nobody to go to is ``skipped`` with reason "no eligible agent". Its executions
    become claimable at ``not_before`` (default: now).
    """
    run = NewRun(task_id, spec, fire_time=fire_time, reason=reason, not_before=not_before)
    [run_id], wake = fire_many(conn, [run], now=now, plan=plan or Dispatch(conn))
    return run_id, wake


# Built once: building an INSERT per run (its values and cache key) cost more than running it.
_INSERT_RUN = insert(runs).returning(runs.c.id)
QUEUE = insert(executions)
"""Queue executions: one row, or many in one executemany."""


def insert_run(
    conn: Connection,
    task_id: int,
    *,
    fire_time: datetime,
    now: datetime,
    status: RunStatus = RunStatus.PENDING,
    reason: str | None = None,
) -> int:
    """Insert one run (``UNIQUE(task_id, fire_time)`` refuses a second); its id."""
    params = {
        "task_id": task_id,
        "fire_time": fire_time,
        "status": status.value,
        "reason": reason,
        "created_at": now,
        "finished_at": now if status in RUN_TERMINAL else None,
    }
    run_id: int = conn.execute(_INSERT_RUN, params).scalar_one()
    return run_id


@dataclass(frozen=True, slots=True)
class NewRun:
    """A pending run to fire: its task and spec, its fire time and reason, and when its
    executions may start (None: now)."""

    task_id: int
    spec: TaskSpec
    fire_time: datetime
    reason: str | None = None
    not_before: datetime | None = None


def fire_many(
    conn: Connection, new: Sequence[NewRun], *, now: datetime, plan: Dispatch
) -> tuple[list[int], Wake]:
    """Fire many runs as ``fire`` fires one, in a few statements whatever their number: the
    runs' ids (in the order given) and whom to wake; their tasks are settled."""
    if not new:
        return [], Wake()
    placements = [
        plan.place(0, run.task_id, run.spec, now=now, not_before=run.not_before) for run in new
    ]
    run_ids, wake = fire_placed(conn, new, placements, now=now, plan=plan)
    # As the runs moved: every placed one to pending, then the leased ones to running, then
    # the skipped ones (a task with several runs ends as the last of these moves leaves it).
    fired = list(zip(new, placements, strict=True))
    moved = [(run.task_id, RunStatus.PENDING) for run, placed in fired if not placed.nobody]
    for status in (RunStatus.RUNNING, RunStatus.SKIPPED):
        moved += [(run.task_id, status) for run, placed in fired if placed.run_status is status]
    settle_tasks(conn, moved, now=now)
    return run_ids, wake


def fire_placed(
    conn: Connection,
    new: Sequence[NewRun],
    placements: Sequence[Placement],
    *,
    now: datetime,
    plan: Dispatch,
) -> tuple[list[int], Wake]:
    """Insert the runs of ``new`` already in the status their ``placements`` (from
    ``plan.place``, in the same order) give them, then their executions: a leased or skipped
    run is written once, not inserted pending and moved. The runs' ids and whom to wake; the
    tasks are left to the caller (see ``Dispatch.moved``)."""
    run_rows = [
        _run_row(run, placement.run_status, now)
        for run, placement in zip(new, placements, strict=True)
    ]
    run_ids = insert_returning_ids(conn, runs, run_rows)
    queued: list[dict[str, Any]] = []
    leased: list[tuple[dict[str, Any], TaskSpec]] = []
    wake = Wake()
    for run_id, run, placement in zip(run_ids, new, placements, strict=True):
        placement.assign(run_id, run.task_id)
        queued += placement.queued
        leased += placement.leased
        wake |= placement.wake
        if placement.nobody:
            plan.moved[run.task_id] = RunStatus.SKIPPED
    if queued:
        prepared.execute_many(conn, QUEUE, queued)
    plan.lease(leased, now=now, start_runs_too=False)
    return run_ids, wake


def _run_row(run: NewRun, status: RunStatus, now: datetime) -> dict[str, Any]:
    """A new run's row in ``status`` (a skipped run's reason says why, after any given)."""
    reason = run.reason
    if status is RunStatus.SKIPPED:
        reason = NO_ELIGIBLE_AGENT if reason is None else f"{reason}; {NO_ELIGIBLE_AGENT}"
    return {
        "task_id": run.task_id,
        "fire_time": run.fire_time,
        "status": status.value,
        "reason": reason,
        "created_at": now,
        "started_at": now if status is RunStatus.RUNNING else None,
        "finished_at": now if status in RUN_TERMINAL else None,
    }


def _place(
    conn: Connection,
    placing: Sequence[tuple[int, int, TaskSpec, datetime | None]],
    *,
    now: datetime,
    plan: Dispatch,
) -> Wake:
    """Queue (or lease) the executions of pending runs, given as (run, task, spec, not
    before), and settle their tasks; a run with nobody to go to is skipped."""
    queued: list[dict[str, Any]] = []
    leased: list[tuple[dict[str, Any], TaskSpec]] = []
    placed: set[int] = set()
    skipped: list[tuple[int, int]] = []
    wake = Wake()
    for run_id, task_id, spec, not_before in placing:
        placement = plan.place(run_id, task_id, spec, now=now, not_before=not_before)
        if placement.nobody:
            skipped.append((run_id, task_id))
            continue
        placed.add(task_id)
        queued += placement.queued
        leased += placement.leased
        wake |= placement.wake
    if queued:
        prepared.execute_many(conn, QUEUE, queued)
    settle_tasks_alike(conn, placed, RunStatus.PENDING, now=now)
    plan.lease(leased, now=now)
    for run_id, task_id in skipped:
        move_run(conn, run_id, RunStatus.SKIPPED, now=now, reason=NO_ELIGIBLE_AGENT)
        settle_task(conn, task_id, RunStatus.SKIPPED, now=now)
        plan.moved[task_id] = RunStatus.SKIPPED
    return wake


def dispatch(
    conn: Connection,
    run_id: int,
    task_id: int,
    spec: TaskSpec,
    *,
    now: datetime,
    not_before: datetime | None = None,
    plan: Dispatch | None = None,
) -> Wake:
    """Queue (or, through ``plan``, lease) the executions of a pending run; without ``plan``,
    on a snapshot of the agents taken now."""
    placing = [(run_id, task_id, spec, not_before)]
    return _place(conn, placing, now=now, plan=plan or Dispatch(conn))


def execution_row(
    run_id: int,
    task_id: int,
    spec: TaskSpec,
    agent: str | None,
    *,
    now: datetime,
    not_before: datetime | None = None,
) -> dict[str, Any]:
    """The first, queued attempt of a run on ``agent`` (None: the first matching claimer)."""
    return {
        "run_id": run_id,
        "task_id": task_id,
        "ownership": spec.ownership.value,
        "agent": agent,
        "attempt": 1,
        "status": ExecutionStatus.QUEUED.value,
        "not_before": not_before or now,
        "queued_at": now,
    }
