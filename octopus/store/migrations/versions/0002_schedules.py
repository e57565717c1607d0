"""Schedules: end time, run limit, jitter, overlap and missed-run policies, firing bookkeeping.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from alembic import op

from octopus.core.enums import MissedPolicy, OverlapPolicy
from octopus.store.tables import one_of_sql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _policy(column: str, enum: type[StrEnum], default: StrEnum) -> str:
    # A named column CHECK in ADD COLUMN works on SQLite and PostgreSQL alike, so SQLite needs
    # no table rebuild (which, with foreign keys on, would cascade-delete every run).
    width = max(len(member.value) for member in enum) + 8
    return (
        f"ALTER TABLE tasks ADD COLUMN {column} VARCHAR({width}) DEFAULT '{default.value}' "
        f"NOT NULL CONSTRAINT ck_tasks_{column}_valid CHECK ({one_of_sql(column, enum)})"
    )


_COLUMNS = (
    "ALTER TABLE tasks ADD COLUMN end_at TIMESTAMP WITH TIME ZONE",
    "ALTER TABLE tasks ADD COLUMN max_runs INTEGER",
    "ALTER TABLE tasks ADD COLUMN jitter_seconds FLOAT DEFAULT 0 NOT NULL",
    "ALTER TABLE tasks ADD COLUMN run_count INTEGER DEFAULT 0 NOT NULL",
    "ALTER TABLE tasks ADD COLUMN last_fire_time TIMESTAMP WITH TIME ZONE",
    "ALTER TABLE tasks ADD COLUMN waiting_run_id BIGINT",
)


def upgrade() -> None:
    """Add the schedule columns to ``tasks``; existing tasks get the defaults."""
    for statement in _COLUMNS:
        op.execute(statement)
    op.execute(_policy("overlap_policy", OverlapPolicy, OverlapPolicy.SKIP))
    op.execute(_policy("missed_policy", MissedPolicy, MissedPolicy.RUN_ONCE))
    op.create_index("ix_tasks_waiting_run_id", "tasks", ["waiting_run_id"])


def downgrade() -> None:
    """Drop the schedule columns (SQLite 3.35 or newer drops columns in place)."""
    op.drop_index("ix_tasks_waiting_run_id", table_name="tasks")
    for column in (
        "missed_policy",
        "overlap_policy",
        "waiting_run_id",
        "last_fire_time",
        "run_count",
        "jitter_seconds",
        "max_runs",
        "end_at",
    ):
        op.execute(f"ALTER TABLE tasks DROP COLUMN {column}")
