"""The initial schema: agents, tasks, runs, executions, plugins.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import sqlalchemy as sa
from alembic import op

from octopus.core.enums import (
    AgentStatus,
    ExecutionStatus,
    OnLost,
    Ownership,
    RunStatus,
    TaskStatus,
    TaskType,
)
from octopus.store.tables import one_of_sql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _enum(name: str, length: int, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(length), nullable=nullable)


def _check(
    table: str, column: str, enum: type[StrEnum], *, nullable: bool = False
) -> sa.Constraint:
    # Built from the enums so no status is spelled twice; a later revision that changes an
    # enum must replace its constraint.
    condition = one_of_sql(column, enum, nullable=nullable)
    return sa.CheckConstraint(condition, name=op.f(f"ck_{table}_{column}_valid"))


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "agents",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(255), nullable=False),
        _enum("status", 16),
        sa.Column("drain_requested", sa.Boolean(), nullable=False),
        _json("labels"),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("os_user", sa.String(128), nullable=False),
        sa.Column("pid", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        _time("started_at"),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("free_slots", sa.Integer(), nullable=False),
        _json("running"),
        _json("plugin_versions"),
        sa.Column("cpu_percent", sa.Float(), nullable=False),
        sa.Column("memory_percent", sa.Float(), nullable=False),
        _time("last_heartbeat"),
        _time("enrolled_at", nullable=False),
        _time("revoked_at"),
        _check("agents", "status", AgentStatus),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("name", name=op.f("uq_agents_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_agents_token_hash")),
    )
    op.create_table(
        "plugins",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.LargeBinary(), nullable=False),
        _json("actions"),
        sa.Column("size", sa.Integer(), nullable=False),
        _time("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_plugins")),
    )
    op.create_table(
        "tasks",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("plugin", sa.String(128), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        _json("args"),
        _json("kwargs"),
        _enum("type", 17),
        _enum("ownership", 16),
        sa.Column("target", sa.String(128), nullable=True),
        _json("labels"),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("retry_backoff_seconds", sa.Float(), nullable=False),
        _enum("on_lost", 13),
        _time("run_at"),
        sa.Column("interval_seconds", sa.Float(), nullable=True),
        _time("start_at"),
        sa.Column("cron", sa.String(200), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        _enum("status", 17),
        _enum("last_run_status", 17, nullable=True),
        _time("next_run_at"),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(128), nullable=True),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        _check("tasks", "type", TaskType),
        _check("tasks", "ownership", Ownership),
        _check("tasks", "on_lost", OnLost),
        _check("tasks", "status", TaskStatus),
        _check("tasks", "last_run_status", RunStatus, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_tasks_idempotency_key")),
    )
    op.create_index(op.f("ix_tasks_next_run_at"), "tasks", ["next_run_at"])
    op.create_index(op.f("ix_tasks_plugin"), "tasks", ["plugin"])
    op.create_index(op.f("ix_tasks_status_id"), "tasks", ["status", "id"])
    op.create_table(
        "runs",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("task_id", _id(), nullable=False),
        _time("fire_time", nullable=False),
        _enum("status", 17),
        sa.Column("reason", sa.Text(), nullable=True),
        _time("created_at", nullable=False),
        _time("started_at"),
        _time("finished_at"),
        _check("runs", "status", RunStatus),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_runs_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("task_id", "fire_time", name=op.f("uq_runs_task_id_fire_time")),
    )
    op.create_table(
        "executions",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("run_id", _id(), nullable=False),
        sa.Column("task_id", _id(), nullable=False),
        _enum("ownership", 16),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_of", _id(), nullable=True),
        _enum("status", 17),
        _time("not_before", nullable=False),
        _time("lease_expires_at"),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("plugin_sha256", sa.String(64), nullable=True),
        _json("result", nullable=True),
        _json("error", nullable=True),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("log_truncated", sa.Boolean(), nullable=False),
        _time("queued_at", nullable=False),
        _time("started_at"),
        _time("finished_at"),
        _check("executions", "ownership", Ownership),
        _check("executions", "status", ExecutionStatus),
        sa.ForeignKeyConstraint(
            ["retry_of"],
            ["executions.id"],
            name=op.f("fk_executions_retry_of_executions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_executions_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_executions_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
    )
    op.create_index(op.f("ix_executions_run_id"), "executions", ["run_id"])
    op.create_index(
        op.f("ix_executions_status_agent_not_before"),
        "executions",
        ["status", "agent", "not_before"],
    )
    op.create_index(
        op.f("ix_executions_status_lease_expires_at"),
        "executions",
        ["status", "lease_expires_at"],
    )
    op.create_index(op.f("ix_executions_task_id_id"), "executions", ["task_id", "id"])


def downgrade() -> None:
    """Drop every table (their indexes go with them)."""
    for table in ("executions", "runs", "tasks", "plugins", "agents"):
        op.drop_table(table)
