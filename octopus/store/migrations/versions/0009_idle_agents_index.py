"""A new run finds its agent among the idle agents in the order it prefers them.

Every create read every agent with its load to choose one: 47 ms a create with 10,000 online
agents. ``(status, concurrency, name)`` gives the online agents with the most slots first, by
name, so one run's look-up reads the agents holding work and the idle ones up to the first
whose labels match (``store._lookup``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 22:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_agents_status_concurrency_name", "agents", ["status", "concurrency", "name"]
    )


def downgrade() -> None:
    op.drop_index("ix_agents_status_concurrency_name", table_name="agents")
