"""The storage contract: use-case methods that the server calls, each stating what it guarantees.

Every method is one short transaction. Status changes are guarded updates
(``UPDATE ... WHERE status IN (allowed)``), so a racing caller gets NotFound, Conflict or
Fenced, never a silent overwrite. Times passed in as ``now`` are timezone-aware UTC; the store
never reads the clock itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Protocol, Self

from octopus.core.audit import AuditEntry, AuditFilter, AuditNote
from octopus.core.enums import AgentStatus, ExecutionStatus, RunStatus, TaskStatus, TaskType
from octopus.core.models import (
    JSON,
    ActionSpec,
    Agent,
    AgentFacts,
    Execution,
    ExecutionError,
    Plugin,
    Run,
    Task,
    TaskSpec,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Wake:
    """Which agents have new work or cancellations: named agents, and whether any agent may."""

    agents: frozenset[str] = frozenset()
    anyone: bool = False

    def __or__(self, other: Wake) -> Wake:
        return Wake(agents=self.agents | other.agents, anyone=self.anyone or other.anyone)


@dataclass(frozen=True, kw_only=True)
class CreatedTasks:
    """The outcome of ``create_tasks``: the tasks' ids in request order, whether they are
    new, whom to wake, and the executions leased at once to agents whose claims were waiting
    (see ``Direct``).

    The ``Task`` records are built on first use, from what the transaction wrote and without
    the database: the caller hands leased work over first (a claim waits on it), and a caller
    that needs only the ids never builds them (a thousand cost a bulk create a tenth of its
    time)."""

    ids: list[int]
    created: bool
    wake: Wake = field(default_factory=Wake)
    handed: list[Claimed] = field(default_factory=list)
    build: Callable[[], list[Task]] = field(repr=False, compare=False)

    @cached_property
    def tasks(self) -> list[Task]:
        """The tasks as stored, in request order."""
        return self.build()

    @classmethod
    def found(cls, tasks: list[Task]) -> Self:
        """Tasks stored before (an idempotent repeat), nothing created."""
        return cls(ids=[task.id for task in tasks], created=False, build=lambda: tasks)


@dataclass(frozen=True, kw_only=True)
class Created(CreatedTasks):
    """The outcome of ``create_task``: ``CreatedTasks`` of one task."""

    @property
    def task(self) -> Task:
        """The task as stored."""
        return self.tasks[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusCounts:
    """How many executions and enrolled agents are in each status (absent: none)."""

    executions: dict[ExecutionStatus, int]
    agents: dict[AgentStatus, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionStarted:
    """An execution that ran, as told to the store's listener once its outcome is committed:
    when it was queued and started, and, for the first execution of a run of a scheduled,
    interval or cron task, the run's fire time."""

    queued_at: datetime
    started_at: datetime
    fire_time: datetime | None = None


@dataclass(slots=True, kw_only=True)
class Changes:
    """What one write transaction did that metrics count (filled in as it runs, so mutable)."""

    tasks_created: int = 0
    started: list[ExecutionStarted] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tasks_created or self.started)


StoreListener = Callable[[Changes], None]
"""Called after each committed write transaction that created tasks or ended executions."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """One outcome of ``finish_executions``: the status the execution ended in, or why it
    was refused (``refusal`` is ``not_found`` or ``fenced``, ``reason`` says more)."""

    execution_id: int
    status: ExecutionStatus | None = None
    refusal: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Claimed:
    """An execution just leased to an agent, with what the agent needs to run it."""

    execution: Execution
    plugin: str
    action: str
    args: list[JSON]
    kwargs: dict[str, JSON]
    timeout_seconds: float | None
    plugin_sha256: str


class Direct(Protocol):
    """Agents whose long-poll claims are waiting right now. A creating transaction leases new
    executions to such an agent at once, up to its claim's free slots, and the server hands
    them over after the commit, so they skip the queue and the claim's own pass over the
    store."""

    lease_seconds: float

    def take(self, agent: str, nth: int = 1, ahead: float = 0.0) -> bool:
        """Reserve slots of a waiting claim of ``agent`` up to the ``nth`` execution this
        transaction leases to it (asked with 1, 2, ... in order; a retried transaction asks
        again from 1 and reuses what it reserved), one that may start in ``ahead`` seconds;
        False when no claim is waiting, it has no slot left, or its agent does not take work
        that far ahead of its start (``ClaimRequest.lead_seconds``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimResult:
    """What one claim pass found for an agent: executions leased to it, and executions it
    runs that it must stop."""

    claimed: list[Claimed]
    cancel: list[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatResult:
    """The agent's status after a heartbeat and the running executions it must stop."""

    name: str
    status: AgentStatus
    cancel: list[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Beat:
    """One heartbeat as received, for recording many in one transaction."""

    name: str
    facts: AgentFacts
    labels: dict[str, str]
    draining: bool
    now: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginVersion:
    """A plugin file as scanned from disk, ready to be stored (signed by the plugin store)."""

    name: str
    sha256: str
    source: bytes
    actions: tuple[ActionSpec, ...]
    version: int = 1
    signature: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginSource:
    """What an agent downloads: the file and the signed facts about it."""

    sha256: str
    version: int
    signature: str | None
    source: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What an agent reports for one execution."""

    status: ExecutionStatus
    result: JSON = None
    error: ExecutionError | None = None
    log: str = ""
    log_truncated: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sweep:
    """What a reaper pass changed: executions turned lost, agents turned offline, whom to wake."""

    lost: list[int] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    wake: Wake = field(default_factory=Wake)


@dataclass(frozen=True, slots=True, kw_only=True)
class Firing:
    """What the scheduler decided for one due task, for the store to apply once.

    ``expected`` is the ``next_run_at`` the decision was made from: it guards the write, so
    only one scheduler (of several replicas, or after a restart mid-tick) applies it.
    """

    expected: datetime
    fire: Sequence[tuple[datetime, str | None]] = ()
    """Fire times to fire through the overlap policy, oldest first, each with a reason."""
    missed: Sequence[tuple[datetime, str]] = ()
    """Fire times to record as ``missed`` runs, with why."""
    next_run_at: datetime | None = None


class Planner(Protocol):
    """The scheduler's decisions, asked by ``Store.tick`` inside its transaction (so they
    must be pure: a retried transaction asks again)."""

    def firing(self, task: Task, now: datetime) -> Firing:
        """What to do with ``task``, due at ``now``: fire times to fire and to record missed."""

    def first_fire(self, task: Task, now: datetime) -> datetime | None:
        """The first fire time of a task that has none yet; None if it never fires."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fired:
    """The runs a scheduling step created or started, whom to wake, and the executions it
    leased to waiting claims."""

    runs: list[Run] = field(default_factory=list)
    wake: Wake = field(default_factory=Wake)
    handed: list[Claimed] = field(default_factory=list)

    def __or__(self, other: Fired) -> Fired:
        return Fired(
            runs=self.runs + other.runs,
            wake=self.wake | other.wake,
            handed=self.handed + other.handed,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinToken:
    """A join token as stored (only its hash is kept): when it was made, when it expires, and
    when a rotation retired it (None while it is current)."""

    created_at: datetime
    expires_at: datetime | None
    replaced_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruned:
    """What one pruning batch deleted."""

    tasks: int = 0
    runs: int = 0
    executions: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            tasks=self.tasks + other.tasks,
            runs=self.runs + other.runs,
            executions=self.executions + other.executions,
        )


class Store(Protocol):
    """Use-case methods over tasks, runs, executions, agents and plugins.

    A method taking ``actor`` records who asked for the change in the audit log, in the same
    transaction as the change; with ``actor=None`` nothing is recorded.
    """

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision; safe to call on every start."""

    def close(self) -> None:
        """Release every connection."""

    def writer_if_free(self) -> AbstractContextManager[bool]:
        """Hold the database's single writer for this thread while no one else holds it: the
        block gets True, and this thread's writes inside it go straight in. False, holding
        nothing, when another thread holds the writer or the database takes concurrent
        writers (PostgreSQL, whose writes wait on the network and on row locks). The server
        runs short writes on its event loop this way: two thread hops fewer, and no
        transaction holds the writer while its thread waits for the GIL."""

    # Tasks --------------------------------------------------------------------------------

    def create_task(
        self,
        spec: TaskSpec,
        *,
        now: datetime,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        actor: str | None = None,
        direct: Direct | None = None,
    ) -> Created:
        """Store a task; an ``adhoc`` task also fires its one run in the same transaction.

        Firing snapshots eligible agents: ``all`` gets one queued execution per online agent
        whose labels match (none: the run is ``skipped`` with reason "no eligible agent");
        ``anyone`` gets one execution assigned to the least-loaded matching online agent, or
        left unassigned for the first matching agent to claim; ``specific`` gets one execution
        for ``spec.target`` whether or not it is online. The same ``idempotency_key`` with the
        same ``request_hash`` returns the stored task with ``created=False``; with another
        hash it raises Conflict. Nothing is stored on error.

        With ``direct``, an execution whose agent is online and has a claim waiting is leased
        to it at once (``running``, in ``Created.handed``) instead of queued.
        """

    def create_tasks(
        self,
        specs: Sequence[TaskSpec],
        *,
        now: datetime,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        actor: str | None = None,
    ) -> CreatedTasks:
        """Store several tasks atomically, as ``create_task`` would one after the other: all
        of them or, on any error, none.

        Adhoc tasks fire in the same transaction; ``anyone`` work spreads over the agents as
        if the tasks came one by one. The same ``idempotency_key`` with the same
        ``request_hash`` returns the stored tasks in order with ``created=False``; with
        another hash it raises Conflict. Bulk keys never match a single create's key.
        """

    def status_counts(self) -> StatusCounts:
        """Executions by status and enrolled (not revoked) agents by status, for metrics."""

    def listen(self, listener: StoreListener) -> None:
        """Tell ``listener`` what each write transaction did (tasks created, executions that
        ended after starting) once it commits, never for one rolled back. It must be quick
        and must not raise."""

    def finish_executions(
        self, agent: str, reports: Sequence[tuple[int, Outcome]], *, now: datetime
    ) -> tuple[list[Finished], Wake]:
        """``finish_execution`` for many ``(execution_id, outcome)`` pairs from one agent in
        one transaction, answered in order. Each report is fenced on its own: one the agent
        may not make is answered with its refusal and changes nothing, and the others are
        recorded all the same. Retries and run settling are as for single reports.
        """

    def release_executions(
        self, agent: str, execution_ids: Sequence[int], *, now: datetime
    ) -> tuple[list[Finished], Wake]:
        """Queue again executions ``agent`` claimed and never started, in one transaction,
        answered in order (``status`` queued, or cancelled for one marked for stopping). Each
        is fenced on its own, as a batched report is; the attempt number stays; an ``anyone``
        execution is unassigned; a run with no started execution is pending again, and so is
        its one-shot task.
        """

    def get_task(self, task_id: int) -> Task:
        """One task; NotFound if absent."""

    def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        type: TaskType | None = None,
        plugin: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Task], int]:
        """A page of tasks, newest first, and the total matching the filters."""

    def list_runs(
        self, task_id: int, *, limit: int = 20, offset: int = 0, status: RunStatus | None = None
    ) -> list[Run]:
        """A page of a task's runs, newest fire time first; NotFound if the task is absent."""

    def count_runs(self, task_id: int, *, status: RunStatus | None = None) -> int:
        """How many runs a task has (in ``status`` if given); NotFound if the task is absent."""

    def list_executions(
        self,
        *,
        task_id: int | None = None,
        run_ids: Sequence[int] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Execution], int]:
        """A page of executions, newest first, and the total; NotFound if ``task_id`` is absent."""

    def get_execution(self, execution_id: int) -> Execution:
        """One execution; NotFound if absent."""

    def get_execution_log(self, execution_id: int) -> tuple[str, bool]:
        """An execution's captured output and whether it was truncated; NotFound if absent."""

    def cancel_task(
        self, task_id: int, *, now: datetime, actor: str | None = None
    ) -> tuple[Task, Wake]:
        """Cancel a task: queued executions become ``cancelled`` at once; running ones are
        marked for stopping (their agents learn it from claim and heartbeat answers and report
        ``cancelled``). Conflict if the task already finished; NotFound if absent.
        """

    # Agents -------------------------------------------------------------------------------

    def enroll_agent(
        self,
        name: str,
        *,
        labels: dict[str, str],
        token_hash: str,
        now: datetime,
        actor: str | None = None,
    ) -> Agent:
        """Register a new agent with the hash of its token; Conflict if the name is taken by
        an agent that is not revoked (a revoked name is enrolled afresh)."""

    def agent_for_token(self, token_hash: str) -> Agent | None:
        """The agent holding this token hash, or None if unknown or revoked.

        The answer may be a remembered copy: its name is current, its other fields may not be.
        A revocation through this store takes effect on the next call.
        """

    def remembered_agent(self, token_hash: str) -> Agent | None:
        """``agent_for_token`` answered from memory only, without I/O (safe on an event loop);
        None means "not remembered": ask ``agent_for_token``."""

    def get_agent(self, name: str) -> Agent:
        """One agent; NotFound if absent."""

    def list_agents(self) -> list[Agent]:
        """Every enrolled agent that is not revoked, by name."""

    def record_heartbeat(
        self,
        name: str,
        *,
        facts: AgentFacts,
        labels: dict[str, str],
        draining: bool,
        now: datetime,
        lease_seconds: float,
    ) -> HeartbeatResult:
        """Store the agent's facts, mark it online (or draining), and renew to
        ``now + lease_seconds`` the leases of the executions in ``facts.running`` that it
        still holds. Returns the ids of its running executions marked for stopping.
        """

    def record_heartbeats(
        self, beats: Sequence[Beat], *, lease_seconds: float
    ) -> dict[str, HeartbeatResult]:
        """``record_heartbeat`` for many beats in one transaction (a later beat of an agent
        wins); unknown or revoked agents are absent from the answer."""

    def claim(
        self,
        agent: str,
        *,
        slots: int,
        now: datetime,
        lease_seconds: float,
        lead_seconds: float = 0.0,
    ) -> ClaimResult:
        """One long-poll pass for ``agent``, in one transaction (only a read when ``slots`` is
        0): the running executions it must stop, and up to ``slots`` queued executions whose
        ``not_before`` is at most ``lead_seconds`` ahead of ``now``, leased to it: first those
        assigned to it, oldest first, then unassigned ``anyone`` executions whose labels match
        its labels. Each becomes
        ``running`` with ``lease_expires_at`` set. Never hands one execution to two agents
        (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single writer on SQLite). An execution
        whose plugin no longer exists is failed instead of claimed. A draining or offline agent
        claims nothing.
        """

    def append_output(self, execution_id: int, *, agent: str, text: str, limit: int) -> None:
        """Append live output to a running execution that ``agent`` holds, so it can be
        followed while it runs; past ``limit`` characters output is dropped and the log marked
        truncated (the final report's bounded log replaces it). Fenced if the agent does not
        hold the execution; NotFound if absent."""

    def finish_execution(
        self, execution_id: int, *, agent: str, outcome: Outcome, now: datetime
    ) -> tuple[Execution, Wake]:
        """Record the outcome of a running execution that ``agent`` holds.

        Fenced if the execution is no longer ``running`` on that agent (lease lost, cancelled,
        already reported); NotFound if absent. Settles the run and task, and queues a retry
        (a new execution with ``attempt + 1`` and ``retry_of`` set) per ``core.retry``.
        """

    def reap(self, *, now: datetime, client_timeout: float) -> Sweep:
        """One reaper pass.

        Agents silent for ``client_timeout`` become ``offline``; running executions whose
        lease expired become ``lost`` (and are retried per ``core.retry``); queued ``all``
        executions of agents gone offline become ``lost``; queued ``anyone`` executions
        assigned to them are unassigned so another agent can claim them. Runs and tasks are
        settled.
        """

    def set_draining(
        self, name: str, draining: bool, *, now: datetime, actor: str | None = None
    ) -> Agent:
        """Stop or resume handing new work to an agent; NotFound if absent."""

    def revoke_agent(self, name: str, *, now: datetime, actor: str | None = None) -> Agent:
        """Revoke an agent's token at once; its running executions are left to their leases."""

    # Plugins ------------------------------------------------------------------------------

    def sync_plugins(self, versions: Sequence[PluginVersion], *, now: datetime) -> list[str]:
        """Make the stored plugins exactly ``versions``: insert new, update changed, delete
        missing. Returns the names that changed."""

    def list_plugins(self) -> list[Plugin]:
        """Every stored plugin, by name."""

    def get_plugin(self, name: str) -> Plugin:
        """One plugin; NotFound if absent."""

    def get_plugin_source(self, name: str) -> PluginSource:
        """A plugin's source with its sha256, version and signature; NotFound if absent."""

    # Scheduling ----------------------------------------------------------------------------

    def tick(
        self,
        planner: Planner,
        *,
        now: datetime,
        due_by: datetime,
        limit: int,
        direct: Direct | None = None,
    ) -> tuple[Fired, datetime | None]:
        """One scheduler step at ``now`` in one transaction: start every ``queue_one`` run
        whose previous run has finished, then for at most ``limit`` of the tasks due by
        ``due_by`` (``due_tasks``; later than ``now`` when the scheduler fires ahead):
        ``plan_task`` with ``planner.first_fire`` for a task without a fire time, ``fire_due``
        with ``planner.firing`` for a due one; returns what fired and the soonest
        ``next_run_at`` of a scheduled or active task as the step left it (None if none).

        One transaction rather than one per part, because under load the scheduler's parts
        queued for the writer (and for the connection) each time, which is what made runs
        late: a tick of a few runs took several times its own work.
        """

    def due_tasks(self, *, now: datetime, limit: int = 100) -> list[Task]:
        """Scheduled or active tasks to act on: unplanned ones first, then those due by ``now``."""

    def fire_due(
        self,
        firings: Sequence[tuple[int, Firing]],
        *,
        now: datetime,
        direct: Direct | None = None,
    ) -> Fired:
        """Apply each ``(task_id, firing)`` to its due task exactly once, all in one
        transaction on one snapshot of the agents.

        Only while a task is ``scheduled`` or ``active`` with ``next_run_at ==
        firing.expected`` (otherwise nothing happens to it and no runs return): records the
        ``missed`` runs, fires each of ``firing.fire`` through the task's overlap policy
        (``skip`` records a ``skipped`` run with its reason; ``queue_one`` keeps one run
        ``pending`` without executions until the previous run ends; ``cancel_previous`` cancels
        the unfinished runs' executions first; ``allow`` fires), stops at ``max_runs``, sets
        ``next_run_at``, and ends a repeating task whose schedule ran out as ``succeeded``.
        Executions become claimable at the fire time plus the task's jitter; with ``direct``,
        those claimable now go to agents whose claims wait, as ``create_task`` does.
        """

    def fire_run(
        self, task_id: int, *, fire_time: datetime, next_run_at: datetime | None, now: datetime
    ) -> tuple[Run | None, Wake]:
        """``fire_due`` for the single fire time ``fire_time``; None if already fired."""

    def plan_task(self, task_id: int, *, next_run_at: datetime, now: datetime) -> bool:
        """Set the first fire time of a task that has none; False if it already has one."""

    def run_now(self, task_id: int, *, now: datetime, actor: str | None = None) -> Fired:
        """Fire one extra run of an ``active`` or ``paused`` task at ``now`` (reason "run
        now"), outside its overlap policy and ``max_runs``. Conflict for any other status;
        NotFound if absent."""

    def update_task(
        self,
        task_id: int,
        spec: TaskSpec,
        *,
        next_run_at: datetime | None,
        now: datetime,
        actor: str | None = None,
    ) -> Task:
        """Replace the spec of a ``scheduled``, ``active`` or ``paused`` task and its next fire
        time; a repeating task left with none becomes ``succeeded``. Conflict otherwise. The
        audit entry names the fields that changed, never their values."""

    def pause_task(self, task_id: int, *, now: datetime, actor: str | None = None) -> Task:
        """Pause an ``active`` task; InvalidTransition otherwise, NotFound if absent."""

    def resume_task(
        self,
        task_id: int,
        *,
        now: datetime,
        next_run_at: datetime | None = None,
        actor: str | None = None,
    ) -> Task:
        """Resume a ``paused`` task, firing next at ``next_run_at`` if given (otherwise the
        fire times that passed while paused are due, and the missed-run policy applies)."""

    # Task removal and dashboard reads ---------------------------------------------------

    def delete_task(
        self, task_id: int, *, now: datetime | None = None, actor: str | None = None
    ) -> None:
        """Delete a finished task with its runs and executions. Conflict while the task is
        unfinished or any of its executions is still queued or running; NotFound if absent.
        An audit entry needs ``now`` besides ``actor``."""

    def task_counts(self) -> dict[TaskStatus, int]:
        """How many tasks are in each status (statuses with none are left out)."""

    def outcome_counts(self, *, since: datetime) -> dict[ExecutionStatus, int]:
        """How many executions finished in each status at or after ``since``."""

    def executions_per_minute(self, *, since: datetime) -> list[MinuteCount]:
        """Executions finished at or after ``since``, counted per UTC minute and status."""

    def recent_failures(self, *, limit: int) -> list[Execution]:
        """The newest ``failed``, ``timed_out`` or ``lost`` executions, newest first."""

    def upcoming_tasks(self, *, limit: int) -> list[Task]:
        """Tasks that have a next fire time, soonest first."""

    def find_tasks(self, wanted: TaskFilter, *, before: int | None, limit: int) -> TaskPage:
        """A page of at most ``limit`` tasks matching ``wanted``, newest first, with ids below
        ``before`` (keyset pagination: fast at any depth), and the total that match."""

    def change_marks(self) -> ChangeMarks:
        """Fingerprints of tasks, executions and agents; one moves whenever its kind changes.
        Cheap enough to poll every half second."""

    # Audit log, join tokens, retention ------------------------------------------------------

    def record_audit(self, note: AuditNote, *, now: datetime) -> None:
        """Record an audit entry on its own, for what is not a store change (a login)."""

    def list_audit(
        self, wanted: AuditFilter, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[AuditEntry], int]:
        """A page of audit entries matching ``wanted``, newest first, and how many match."""

    def adopt_join_token(self, token_hash: str, *, now: datetime) -> bool:
        """Make a configured or saved join token current, unless a rotation retired it.

        A hash never seen becomes the current join token (retiring the one before). A known
        hash changes nothing: True if it is current, False if it was retired (a restart with
        an old configured token must not bring it back).
        """

    def rotate_join_token(
        self, token_hash: str, *, now: datetime, expires_at: datetime | None, actor: str
    ) -> JoinToken:
        """Retire the current join token and make ``token_hash`` current, expiring at
        ``expires_at`` (None: never), with an audit entry in the same transaction."""

    def join_token_for(self, token_hash: str) -> JoinToken | None:
        """The join token with this hash, current or retired; None if it never was one."""

    def current_join_token(self) -> JoinToken | None:
        """The join token in force, if there is one."""

    def prune_history(
        self, *, before: datetime | None, batch_size: int, keep_runs: int | None = None
    ) -> Pruned:
        """Delete one batch of finished history, in one short write transaction (the rows
        are chosen beforehand in a read transaction, and checked again as they go).

        Finished ``adhoc`` and ``scheduled`` tasks last changed before ``before``, whole, then
        finished runs of repeating tasks that ended before ``before``, then finished runs of
        a repeating task beyond its newest ``keep_runs`` finished runs, with their executions
        and logs, while the tasks, runs and executions deleted add up to at most
        ``batch_size`` rows (a single task or run with more executions goes alone). None
        leaves out that criterion. Never an unfinished run, a run or task with an execution
        still queued or running, or a repeating task's row. Call again until it deletes
        nothing.
        """


@dataclass(frozen=True, slots=True, kw_only=True)
class MinuteCount:
    """How many executions finished in one UTC minute (``YYYY-MM-DD HH:MM``) in one status."""

    minute: str
    status: ExecutionStatus
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFilter:
    """What a task list is narrowed to; ``search`` matches part of the name, any case."""

    status: TaskStatus | None = None
    type: TaskType | None = None
    plugin: str | None = None
    agent: str | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskPage:
    """A page of tasks, the total that match, and the keyset of the next page (None: last)."""

    tasks: list[Task]
    total: int
    next_before: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeMarks:
    """Fingerprints of the tasks, executions and agents tables."""

    tasks: str
    executions: str
    agents: str
