"""SqlStore: the one Store implementation, over SQLite or PostgreSQL with SQLAlchemy Core.

Each public method is one short transaction around a use-case function from the ``_tasks``,
``_agents``, ``_claims`` and ``_plugins`` modules. Writes go through ``_write``, which holds the
in-process writer lock on SQLite and retries a PostgreSQL deadlock victim a few times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from octopus.core.audit import (
    AuditAction,
    AuditEntry,
    AuditFilter,
    AuditNote,
    agent_subject,
    task_subject,
)
from octopus.core.enums import ExecutionStatus, RunStatus, TaskStatus, TaskType
from octopus.core.models import Agent, AgentFacts, Execution, Plugin, Run, Task, TaskSpec
from octopus.errors import Conflict
from octopus.store import (
    _agents,
    _audit,
    _changes,
    _claims,
    _counts,
    _create,
    _dashboard,
    _join_tokens,
    _plugins,
    _release,
    _removal,
    _retention,
    _schedule,
    _settle,
    _tasks,
)
from octopus.store._dialect import (
    WRITE_OPTION,
    driver_transaction,
    engine_for,
    is_retryable,
    migration_lock,
    writer_lock,
)
from octopus.store._token_cache import TokenCache
from octopus.store.base import (
    Beat,
    ChangeMarks,
    Changes,
    ClaimResult,
    Created,
    CreatedTasks,
    Direct,
    Finished,
    Fired,
    Firing,
    HeartbeatResult,
    JoinToken,
    MinuteCount,
    Outcome,
    Planner,
    PluginSource,
    PluginVersion,
    Pruned,
    StatusCounts,
    StoreListener,
    Sweep,
    TaskFilter,
    TaskPage,
    Wake,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
WRITE_ATTEMPTS = 3
TOKEN_TTL_SECONDS = 1.0
"""How long a PostgreSQL server trusts a remembered agent token (another replica may revoke)."""


def open_store(url: str) -> SqlStore:
    """A store for ``sqlite:///path`` or ``postgresql://...``; call ``migrate()`` before use.

    Raises:
        ValueError: the URL names an unsupported backend.
    """
    return SqlStore(engine_for(url))


def alembic_config(connection: Connection) -> Config:
    """An Alembic configuration built in code, pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


class SqlStore:
    """The Store protocol over one SQLAlchemy engine."""

    _listener: StoreListener | None = None

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer_lock(engine)
        self._single_writer = engine.dialect.name == "sqlite"
        self._writer_connection: Connection | None = None
        # SQLite has one server process, so a revocation always passes through this cache;
        # PostgreSQL replicas revoke behind each other's back, so their entries expire.
        ttl = None if self._single_writer else TOKEN_TTL_SECONDS
        self._tokens = TokenCache(ttl_seconds=ttl)

    @property
    def engine(self) -> Engine:
        """The underlying engine (for tests and diagnostics)."""
        return self._engine

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def _write(self, work: Callable[[Connection], T]) -> T:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self._writer, self._writing() as conn, self._transaction(conn):
                    changes = conn.info[_changes.KEY] = Changes()
                    result = work(conn)
                    del conn.info[_changes.KEY]
                if changes and self._listener is not None:
                    self._listener(changes)
                return result
            except DBAPIError as error:
                if attempt == WRITE_ATTEMPTS or not is_retryable(error):
                    raise
                logger.info("Retrying a write transaction after %s", type(error.orig).__name__)
        raise AssertionError("unreachable")

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """The connection of one write transaction (the caller holds the writer lock).

        SQLite's writes take turns under the writer lock, so they share one connection kept
        open for them: a pool checkout and return cost a single create a tenth of a
        millisecond. PostgreSQL's concurrent writers each take one from the pool.
        """
        if not self._single_writer:
            with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
                yield conn
            return
        kept = self._writer_connection
        if kept is None or kept.closed or kept.invalidated:
            kept = self._engine.connect().execution_options(**{WRITE_OPTION: True})
            self._writer_connection = kept
        yield kept

    def _transaction(self, conn: Connection) -> AbstractContextManager[object]:
        """A write transaction on ``conn``: on SQLite's kept writer connection, begun and
        ended on the driver (see ``driver_transaction``)."""
        return driver_transaction(conn) if self._single_writer else conn.begin()

    def writer_if_free(self) -> AbstractContextManager[bool]:
        """See ``Store.writer_if_free``."""
        return self._writer.hold_if_free()

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision; safe to call on every start."""
        with self._writer, self._engine.connect() as conn, conn.begin():
            with migration_lock(conn):
                command.upgrade(alembic_config(conn), "head")

    def close(self) -> None:
        """Release every connection."""
        with self._writer:
            if self._writer_connection is not None:
                self._writer_connection.close()
                self._writer_connection = None
        self._engine.dispose()

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
        """See ``Store.create_task``."""
        try:
            return self._write(
                lambda conn: _audit.task_created(
                    conn,
                    _create.create_task(
                        conn,
                        spec,
                        now=now,
                        idempotency_key=idempotency_key,
                        request_hash=request_hash,
                        direct=direct,
                    ),
                    spec,
                    actor,
                    now=now,
                )
            )
        except IntegrityError:
            if idempotency_key is None:
                raise
        # Another caller stored the same key between our look-up and our insert.
        with self._read() as conn:
            existing = _create.find_by_key(conn, idempotency_key, request_hash)
        if existing is None:
            raise Conflict(f"idempotency key '{idempotency_key}' could not be stored")
        return Created.found([existing])

    def create_tasks(
        self,
        specs: Sequence[TaskSpec],
        *,
        now: datetime,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        actor: str | None = None,
    ) -> CreatedTasks:
        """See ``Store.create_tasks``."""
        try:
            return self._write(
                lambda conn: _audit.tasks_created(
                    conn,
                    _create.create_tasks(
                        conn,
                        specs,
                        now=now,
                        idempotency_key=idempotency_key,
                        request_hash=request_hash,
                    ),
                    specs,
                    actor,
                    now=now,
                )
            )
        except IntegrityError:
            if idempotency_key is None:
                raise
        # Another caller stored the same key between our look-up and our insert.
        with self._read() as conn:
            keys = _create.item_keys(idempotency_key, len(specs))
            existing = _create.find_batch(conn, keys, request_hash)
        if not existing:
            raise Conflict(f"idempotency key '{idempotency_key}' could not be stored")
        return CreatedTasks.found(existing)

    def status_counts(self) -> StatusCounts:
        """See ``Store.status_counts``."""
        with self._read() as conn:
            return _counts.status_counts(conn)

    def listen(self, listener: StoreListener) -> None:
        """See ``Store.listen``."""
        self._listener = listener

    def finish_executions(
        self, agent: str, reports: Sequence[tuple[int, Outcome]], *, now: datetime
    ) -> tuple[list[Finished], Wake]:
        """See ``Store.finish_executions``."""
        return self._write(lambda conn: _settle.finish_executions(conn, agent, reports, now=now))

    def release_executions(
        self, agent: str, execution_ids: Sequence[int], *, now: datetime
    ) -> tuple[list[Finished], Wake]:
        """See ``Store.release_executions``."""
        return self._write(
            lambda conn: _release.release_executions(conn, agent, execution_ids, now=now)
        )

    def get_task(self, task_id: int) -> Task:
        """See ``Store.get_task``."""
        with self._read() as conn:
            return _tasks.get_task(conn, task_id)

    def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        type: TaskType | None = None,
        plugin: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Task], int]:
        """See ``Store.list_tasks``."""
        with self._read() as conn:
            return _tasks.list_tasks(
                conn, status=status, type=type, plugin=plugin, limit=limit, offset=offset
            )

    def list_runs(
        self, task_id: int, *, limit: int = 20, offset: int = 0, status: RunStatus | None = None
    ) -> list[Run]:
        """See ``Store.list_runs``."""
        with self._read() as conn:
            return _tasks.list_runs(conn, task_id, limit=limit, offset=offset, status=status)

    def count_runs(self, task_id: int, *, status: RunStatus | None = None) -> int:
        """See ``Store.count_runs``."""
        with self._read() as conn:
            return _tasks.count_runs(conn, task_id, status=status)

    def list_executions(
        self,
        *,
        task_id: int | None = None,
        run_ids: Sequence[int] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Execution], int]:
        """See ``Store.list_executions``."""
        with self._read() as conn:
            return _tasks.list_executions(
                conn, task_id=task_id, run_ids=run_ids, limit=limit, offset=offset
            )

    def get_execution(self, execution_id: int) -> Execution:
        """See ``Store.get_execution``."""
        with self._read() as conn:
            return _tasks.get_execution(conn, execution_id)

    def get_execution_log(self, execution_id: int) -> tuple[str, bool]:
        """See ``Store.get_execution_log``."""
        with self._read() as conn:
            return _tasks.get_execution_log(conn, execution_id)

    def cancel_task(
        self, task_id: int, *, now: datetime, actor: str | None = None
    ) -> tuple[Task, Wake]:
        """See ``Store.cancel_task``."""
        return self._write(
            lambda conn: _audit.after(
                conn,
                _tasks.cancel_task(conn, task_id, now=now),
                actor,
                AuditAction.TASK_CANCELLED,
                task_subject(task_id),
                now=now,
            )
        )

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
        """See ``Store.enroll_agent``."""
        try:
            return self._write(
                lambda conn: _audit.after(
                    conn,
                    _agents.enroll_agent(conn, name, labels=labels, token_hash=token_hash, now=now),
                    actor,
                    AuditAction.AGENT_ENROLLED,
                    agent_subject(name),
                    now=now,
                    detail={"labels": dict(labels)},
                )
            )
        except IntegrityError:
            raise Conflict("this agent token is already in use") from None

    def remembered_agent(self, token_hash: str) -> Agent | None:
        """See ``Store.remembered_agent``."""
        return self._tokens.get(token_hash)

    def agent_for_token(self, token_hash: str) -> Agent | None:
        """See ``Store.agent_for_token``."""
        agent = self._tokens.get(token_hash)
        if agent is not None:
            return agent
        generation = self._tokens.generation
        with self._read() as conn:
            agent = _agents.agent_for_token(conn, token_hash)
        if agent is not None:
            self._tokens.remember(token_hash, agent, generation=generation)
        return agent

    def get_agent(self, name: str) -> Agent:
        """See ``Store.get_agent``."""
        with self._read() as conn:
            return _agents.get_agent(conn, name)

    def list_agents(self) -> list[Agent]:
        """See ``Store.list_agents``."""
        with self._read() as conn:
            return _agents.list_agents(conn)

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
        """See ``Store.record_heartbeat``."""
        return self._write(
            lambda conn: _agents.record_heartbeat(
                conn,
                name,
                facts=facts,
                labels=labels,
                draining=draining,
                now=now,
                lease_seconds=lease_seconds,
            )
        )

    def record_heartbeats(
        self, beats: Sequence[Beat], *, lease_seconds: float
    ) -> dict[str, HeartbeatResult]:
        """See ``Store.record_heartbeats``."""
        return self._write(
            lambda conn: _agents.record_heartbeats(conn, beats, lease_seconds=lease_seconds)
        )

    def claim(
        self,
        agent: str,
        *,
        slots: int,
        now: datetime,
        lease_seconds: float,
        lead_seconds: float = 0.0,
    ) -> ClaimResult:
        """See ``Store.claim``."""
        if slots <= 0:
            with self._read() as conn:
                return ClaimResult(claimed=[], cancel=_agents.pending_cancels(conn, agent))

        def work(conn: Connection) -> ClaimResult:
            claimed = _claims.claim_executions(
                conn,
                agent,
                slots=slots,
                now=now,
                lease_seconds=lease_seconds,
                due_by=now + timedelta(seconds=lead_seconds),
            )
            return ClaimResult(claimed=claimed, cancel=_agents.pending_cancels(conn, agent))

        return self._write(work)

    def append_output(self, execution_id: int, *, agent: str, text: str, limit: int) -> None:
        """See ``Store.append_output``."""
        self._write(
            lambda conn: _claims.append_output(
                conn, execution_id, agent=agent, text=text, limit=limit
            )
        )

    def finish_execution(
        self, execution_id: int, *, agent: str, outcome: Outcome, now: datetime
    ) -> tuple[Execution, Wake]:
        """See ``Store.finish_execution``."""
        return self._write(
            lambda conn: _claims.finish_execution(
                conn, execution_id, agent=agent, outcome=outcome, now=now
            )
        )

    def reap(self, *, now: datetime, client_timeout: float) -> Sweep:
        """See ``Store.reap``."""
        # The periodic passes (this, the scheduler's tick, the plugin scan) look before they
        # write: an idle pass as a write transaction took the single writer every second or
        # two and, run from a worker thread waiting its turn for the GIL under load, held it
        # 10-35 ms while claims, reports and creates waited.
        with self._read() as conn:
            if not _agents.reap_due(conn, now=now, client_timeout=client_timeout):
                return Sweep()
        return self._write(lambda conn: _agents.reap(conn, now=now, client_timeout=client_timeout))

    def set_draining(
        self, name: str, draining: bool, *, now: datetime, actor: str | None = None
    ) -> Agent:
        """See ``Store.set_draining``."""
        action = AuditAction.AGENT_DRAINED if draining else AuditAction.AGENT_RESUMED
        return self._write(
            lambda conn: _audit.after(
                conn,
                _agents.set_draining(conn, name, draining),
                actor,
                action,
                agent_subject(name),
                now=now,
            )
        )

    def revoke_agent(self, name: str, *, now: datetime, actor: str | None = None) -> Agent:
        """See ``Store.revoke_agent``."""
        self._tokens.forget(name)  # before and after: a look-up in between is not remembered
        try:
            return self._write(
                lambda conn: _audit.after(
                    conn,
                    _agents.revoke_agent(conn, name, now=now),
                    actor,
                    AuditAction.AGENT_REVOKED,
                    agent_subject(name),
                    now=now,
                )
            )
        finally:
            self._tokens.forget(name)

    # Plugins ------------------------------------------------------------------------------

    def sync_plugins(self, versions: Sequence[PluginVersion], *, now: datetime) -> list[str]:
        """See ``Store.sync_plugins``."""
        with self._read() as conn:  # looks before it writes, as ``reap`` does
            if _plugins.in_sync(conn, versions):
                return []
        return self._write(lambda conn: _plugins.sync_plugins(conn, versions, now=now))

    def list_plugins(self) -> list[Plugin]:
        """See ``Store.list_plugins``."""
        with self._read() as conn:
            return _plugins.list_plugins(conn)

    def get_plugin(self, name: str) -> Plugin:
        """See ``Store.get_plugin``."""
        with self._read() as conn:
            return _plugins.get_plugin(conn, name)

    def get_plugin_source(self, name: str) -> PluginSource:
        """See ``Store.get_plugin_source``."""
        with self._read() as conn:
            return _plugins.get_plugin_source(conn, name)

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
        """See ``Store.tick``."""
        with self._read() as conn:  # looks before it writes, as ``reap`` does
            if not _schedule.tick_due(conn, due_by=due_by):
                return Fired(), _schedule.next_due(conn)
        return self._write(
            lambda conn: _schedule.tick(
                conn, planner, now=now, due_by=due_by, limit=limit, direct=direct
            )
        )

    def due_tasks(self, *, now: datetime, limit: int = 100) -> list[Task]:
        """See ``Store.due_tasks``."""
        with self._read() as conn:
            return _schedule.due_tasks(conn, now=now, limit=limit)

    def fire_due(
        self,
        firings: Sequence[tuple[int, Firing]],
        *,
        now: datetime,
        direct: Direct | None = None,
    ) -> Fired:
        """See ``Store.fire_due``."""
        return self._write(lambda conn: _schedule.fire_due(conn, firings, now=now, direct=direct))

    def fire_run(
        self,
        task_id: int,
        *,
        fire_time: datetime,
        next_run_at: datetime | None,
        now: datetime,
    ) -> tuple[Run | None, Wake]:
        """See ``Store.fire_run``."""
        return self._write(
            lambda conn: _schedule.fire_run(
                conn, task_id, fire_time=fire_time, next_run_at=next_run_at, now=now
            )
        )

    def run_now(self, task_id: int, *, now: datetime, actor: str | None = None) -> Fired:
        """See ``Store.run_now``."""
        try:
            return self._write(
                lambda conn: _audit.ran_now(
                    conn, _schedule.run_now(conn, task_id, now=now), actor, task_id, now=now
                )
            )
        except IntegrityError:
            raise Conflict(f"task {task_id} already has a run at {now.isoformat()}") from None

    def update_task(
        self,
        task_id: int,
        spec: TaskSpec,
        *,
        next_run_at: datetime | None,
        now: datetime,
        actor: str | None = None,
    ) -> Task:
        """See ``Store.update_task``."""

        def edit(conn: Connection) -> Task:
            old = _tasks.get_task(conn, task_id).spec
            task = _schedule.update_task(conn, task_id, spec, next_run_at=next_run_at, now=now)
            detail = {"fields": _audit.changed_fields(old, spec)}
            subject = task_subject(task_id)
            return _audit.after(
                conn, task, actor, AuditAction.TASK_EDITED, subject, now=now, detail=detail
            )

        return self._write(edit)

    def plan_task(self, task_id: int, *, next_run_at: datetime, now: datetime) -> bool:
        """See ``Store.plan_task``."""
        return self._write(
            lambda conn: _schedule.plan_task(conn, task_id, next_run_at=next_run_at, now=now)
        )

    def pause_task(self, task_id: int, *, now: datetime, actor: str | None = None) -> Task:
        """See ``Store.pause_task``."""
        return self._write(
            lambda conn: _audit.after(
                conn,
                _schedule.set_paused(conn, task_id, True, now=now, next_run_at=None),
                actor,
                AuditAction.TASK_PAUSED,
                task_subject(task_id),
                now=now,
            )
        )

    def resume_task(
        self,
        task_id: int,
        *,
        now: datetime,
        next_run_at: datetime | None = None,
        actor: str | None = None,
    ) -> Task:
        """See ``Store.resume_task``."""
        return self._write(
            lambda conn: _audit.after(
                conn,
                _schedule.set_paused(conn, task_id, False, now=now, next_run_at=next_run_at),
                actor,
                AuditAction.TASK_RESUMED,
                task_subject(task_id),
                now=now,
            )
        )

    # Task removal and dashboard reads ---------------------------------------------------

    def delete_task(
        self, task_id: int, *, now: datetime | None = None, actor: str | None = None
    ) -> None:
        """See ``Store.delete_task``."""
        subject = task_subject(task_id)

        def remove(conn: Connection) -> None:
            _removal.delete_task(conn, task_id)
            if now is not None:
                _audit.note(conn, actor, AuditAction.TASK_DELETED, subject, now=now)

        self._write(remove)

    def task_counts(self) -> dict[TaskStatus, int]:
        """See ``Store.task_counts``."""
        with self._read() as conn:
            return _dashboard.task_counts(conn)

    def outcome_counts(self, *, since: datetime) -> dict[ExecutionStatus, int]:
        """See ``Store.outcome_counts``."""
        with self._read() as conn:
            return _dashboard.outcome_counts(conn, since=since)

    def executions_per_minute(self, *, since: datetime) -> list[MinuteCount]:
        """See ``Store.executions_per_minute``."""
        with self._read() as conn:
            return _dashboard.executions_per_minute(conn, since=since)

    def recent_failures(self, *, limit: int) -> list[Execution]:
        """See ``Store.recent_failures``."""
        with self._read() as conn:
            return _dashboard.recent_failures(conn, limit=limit)

    def upcoming_tasks(self, *, limit: int) -> list[Task]:
        """See ``Store.upcoming_tasks``."""
        with self._read() as conn:
            return _dashboard.upcoming_tasks(conn, limit=limit)

    def find_tasks(self, wanted: TaskFilter, *, before: int | None, limit: int) -> TaskPage:
        """See ``Store.find_tasks``."""
        with self._read() as conn:
            return _dashboard.find_tasks(conn, wanted, before=before, limit=limit)

    def change_marks(self) -> ChangeMarks:
        """See ``Store.change_marks``."""
        with self._read() as conn:
            return _dashboard.change_marks(conn)

    # Audit log, join tokens, retention ------------------------------------------------------

    def record_audit(self, note: AuditNote, *, now: datetime) -> None:
        """See ``Store.record_audit``."""
        self._write(lambda conn: _audit.record(conn, note, now=now))

    def list_audit(
        self, wanted: AuditFilter, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[AuditEntry], int]:
        """See ``Store.list_audit``."""
        with self._read() as conn:
            return _audit.list_audit(conn, wanted, limit=limit, offset=offset)

    def adopt_join_token(self, token_hash: str, *, now: datetime) -> bool:
        """See ``Store.adopt_join_token``."""
        try:
            return self._write(lambda conn: _join_tokens.adopt(conn, token_hash, now=now))
        except IntegrityError:
            # Another replica starting with the same token stored it first: it is known now.
            return self._write(lambda conn: _join_tokens.adopt(conn, token_hash, now=now))

    def rotate_join_token(
        self, token_hash: str, *, now: datetime, expires_at: datetime | None, actor: str
    ) -> JoinToken:
        """See ``Store.rotate_join_token``."""
        return self._write(
            lambda conn: _join_tokens.rotate(
                conn, token_hash, now=now, expires_at=expires_at, actor=actor
            )
        )

    def join_token_for(self, token_hash: str) -> JoinToken | None:
        """See ``Store.join_token_for``."""
        with self._read() as conn:
            return _join_tokens.find(conn, token_hash)

    def current_join_token(self) -> JoinToken | None:
        """See ``Store.current_join_token``."""
        with self._read() as conn:
            return _join_tokens.current(conn)

    def prune_history(
        self, *, before: datetime | None, batch_size: int, keep_runs: int | None = None
    ) -> Pruned:
        """See ``Store.prune_history``."""
        with self._read() as conn:
            batch = _retention.plan_batch(
                conn, before=before, keep_runs=keep_runs, batch_size=batch_size
            )
        if not (batch.tasks or batch.runs):
            return Pruned()
        return self._write(lambda conn: _retention.delete_batch(conn, batch))
