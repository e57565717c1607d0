"""The database schema as SQLAlchemy Core tables, with the column types both backends share."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import DateTime, TypeDecorator, TypeEngine

from octopus.core.audit import AuditAction
from octopus.core.enums import (
    AgentStatus,
    ExecutionStatus,
    MissedPolicy,
    OnLost,
    OverlapPolicy,
    Ownership,
    RunStatus,
    TaskStatus,
    TaskType,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def id_type() -> TypeEngine[int]:
    """A 64-bit id; plain INTEGER on SQLite, where only that spelling autoincrements."""
    return BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime in and out, on SQLite (which has no zones) as on PostgreSQL.

    SQLite keeps text without an offset, ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (SQLAlchemy's
    own ``DATETIME`` format, so it sorts and compares as time). There this type converts in
    one step instead of its own conversion followed by ``DATETIME``'s: a bulk create binds
    seven times a row, and the two steps were a sixth of its time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return _sqlite_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "sqlite":
            return _sqlite_datetime
        return super().result_processor(dialect, coltype)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return _aware(value).astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store takes aware UTC times only")
    return value


_last_bound: tuple[datetime | None, str | None] = (None, None)


def _sqlite_text(value: datetime | None) -> str | None:
    global _last_bound
    if value is None:
        return None
    last = _last_bound
    # A transaction binds its one "now" to many rows and columns: convert it once.
    if value is last[0]:
        return last[1]
    # The offset is cut off rather than removed with replace(tzinfo=None), which costs more
    # than the formatting itself; "YYYY-MM-DD HH:MM:SS.ffffff" is always 26 characters.
    text = _aware(value).astimezone(UTC).isoformat(" ", "microseconds")[:26]
    _last_bound = (value, text)
    return text


def _sqlite_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    # Parsed with its offset spelled out: six times faster than parsing and then attaching
    # the zone with replace(tzinfo=UTC), and these run several times per row read.
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # text written with an offset by something other than this type
        return datetime.fromisoformat(value).astimezone(UTC)


class JsonText(TypeDecorator[Any]):
    """A JSON value kept as orjson text: exact round trips, and NUL survives on PostgreSQL.

    JSONB would refuse ``\\u0000`` inside strings; TEXT holding the escaped form does not.
    SQL NULL stands for JSON null.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return orjson.dumps(value).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return orjson.loads(value)


def one_of_sql(column: str, enum: type[StrEnum], *, nullable: bool = False) -> str:
    """The SQL condition that ``column`` holds a value of ``enum`` (built from the enum)."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    condition = f"{column} IN ({values})"
    return f"{column} IS NULL OR {condition}" if nullable else condition


def one_of(column: str, enum: type[StrEnum], *, nullable: bool = False) -> CheckConstraint:
    """A CHECK constraint named ``ck_<table>_<column>_valid`` built from ``enum``."""
    return CheckConstraint(one_of_sql(column, enum, nullable=nullable), name=f"{column}_valid")


def _status(enum: type[StrEnum]) -> String:
    """A string column wide enough for every value of ``enum``, with room for new ones."""
    return String(max(len(m.value) for m in enum) + 8)


agents = Table(
    "agents",
    metadata,
    Column("id", id_type(), primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("token_hash", String(255), nullable=False, unique=True),
    Column("status", _status(AgentStatus), nullable=False),
    Column("drain_requested", Boolean, nullable=False, default=False),
    Column("labels", JsonText, nullable=False),
    Column("hostname", String(255), nullable=False, default=""),
    Column("ip", String(64), nullable=False, default=""),
    Column("os_user", String(128), nullable=False, default=""),
    Column("pid", BigInteger, nullable=False, default=0),
    Column("version", String(64), nullable=False, default=""),
    Column("started_at", UTCDateTime),
    Column("concurrency", Integer, nullable=False, default=1),
    Column("free_slots", Integer, nullable=False, default=0),
    Column("running", JsonText, nullable=False),
    Column("plugin_versions", JsonText, nullable=False),
    Column("cpu_percent", Float, nullable=False, default=0.0),
    Column("memory_percent", Float, nullable=False, default=0.0),
    Column("last_heartbeat", UTCDateTime),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    one_of("status", AgentStatus),
    # Idle agents in the order a new run prefers them: most slots, then name (store._lookup).
    Index(None, "status", "concurrency", "name"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", id_type(), primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("plugin", String(128), nullable=False),
    Column("action", String(128), nullable=False),
    Column("args", JsonText, nullable=False),
    Column("kwargs", JsonText, nullable=False),
    Column("type", _status(TaskType), nullable=False),
    Column("ownership", _status(Ownership), nullable=False),
    Column("target", String(128)),
    Column("labels", JsonText, nullable=False),
    Column("timeout_seconds", Float),
    Column("max_retries", Integer, nullable=False),
    Column("retry_backoff_seconds", Float, nullable=False),
    Column("on_lost", _status(OnLost), nullable=False),
    Column("run_at", UTCDateTime),
    Column("interval_seconds", Float),
    Column("start_at", UTCDateTime),
    Column("cron", String(200)),
    Column("timezone", String(64), nullable=False),
    Column("status", _status(TaskStatus), nullable=False),
    Column("last_run_status", _status(RunStatus)),
    Column("next_run_at", UTCDateTime),
    Column("idempotency_key", String(255), unique=True),
    Column("request_hash", String(128)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("end_at", UTCDateTime),
    Column("max_runs", Integer),
    Column("jitter_seconds", Float, nullable=False, default=0.0),
    Column("run_count", Integer, nullable=False, default=0),
    Column("last_fire_time", UTCDateTime),
    Column("waiting_run_id", id_type()),
    Column("overlap_policy", _status(OverlapPolicy), nullable=False),
    Column("missed_policy", _status(MissedPolicy), nullable=False),
    one_of("type", TaskType),
    one_of("ownership", Ownership),
    one_of("on_lost", OnLost),
    one_of("status", TaskStatus),
    one_of("last_run_status", RunStatus, nullable=True),
    one_of("overlap_policy", OverlapPolicy),
    one_of("missed_policy", MissedPolicy),
    Index(None, "status", "id"),
    Index(None, "waiting_run_id"),
    Index(None, "next_run_at"),
    Index(None, "status", "next_run_at"),
    Index(None, "plugin"),
    Index(None, "type", "id"),
    Index(None, "updated_at"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", id_type(), primary_key=True, autoincrement=True),
    Column("task_id", id_type(), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("fire_time", UTCDateTime, nullable=False),
    Column("status", _status(RunStatus), nullable=False),
    Column("reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    UniqueConstraint("task_id", "fire_time"),
    one_of("status", RunStatus),
)

executions = Table(
    "executions",
    metadata,
    Column("id", id_type(), primary_key=True, autoincrement=True),
    Column("run_id", id_type(), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", id_type(), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("ownership", _status(Ownership), nullable=False),
    Column("agent", String(128)),
    Column("attempt", Integer, nullable=False),
    Column("retry_of", id_type(), ForeignKey("executions.id", ondelete="SET NULL")),
    Column("status", _status(ExecutionStatus), nullable=False),
    Column("not_before", UTCDateTime, nullable=False),
    Column("lease_expires_at", UTCDateTime),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("plugin_sha256", String(64)),
    Column("result", JsonText),
    Column("error", JsonText),
    Column("log", Text, nullable=False, default=""),
    Column("log_truncated", Boolean, nullable=False, default=False),
    Column("queued_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    one_of("ownership", Ownership),
    one_of("status", ExecutionStatus),
    Index(None, "status", "agent", "id"),
    Index(None, "task_id", "id"),
    Index(None, "run_id"),
    Index(None, "status", "lease_expires_at"),
    Index(None, "status", "id"),
    Index(None, "agent", "task_id"),
    Index(None, "finished_at"),
    # Only executions marked for stopping: a claim asks for its agent's on every call.
    Index(
        "ix_executions_cancel_requested",
        "agent",
        "id",
        sqlite_where=text("cancel_requested IS 1"),
        postgresql_where=text("cancel_requested IS true"),
    ),
)

plugins = Table(
    "plugins",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("source", LargeBinary, nullable=False),
    Column("actions", JsonText, nullable=False),
    Column("size", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", BigInteger, nullable=False, server_default="1"),
    Column("signature", String(128)),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", id_type(), primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(160), nullable=False),
    Column("action", _status(AuditAction), nullable=False),
    Column("subject", String(160), nullable=False),
    Column("detail", JsonText, nullable=False),
    one_of("action", AuditAction),
    Index(None, "action", "id"),
    Index(None, "actor", "id"),
    Index(None, "subject", "id"),
    Index(None, "at"),
)

join_tokens = Table(
    "join_tokens",
    metadata,
    Column("id", id_type(), primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("replaced_at", UTCDateTime),
)
