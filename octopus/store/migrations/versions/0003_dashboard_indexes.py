"""Indexes for the dashboard: throughput by finish time, failures, the agent filter, changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_tasks_type_id", "tasks", ["type", "id"]),
    ("ix_tasks_updated_at", "tasks", ["updated_at"]),
    ("ix_executions_status_id", "executions", ["status", "id"]),
    ("ix_executions_agent_task_id", "executions", ["agent", "task_id"]),
    ("ix_executions_finished_at", "executions", ["finished_at"]),
)


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
