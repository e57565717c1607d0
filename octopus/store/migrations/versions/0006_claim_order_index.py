"""Claims read an agent's queued executions in id order straight from an index.

The claim asks for the oldest due executions assigned to an agent, ``ORDER BY id LIMIT n``.
With ``(status, agent, not_before)`` every queued execution of the agent was read and sorted
for each claim, so a backlog of 20,000 made each claim pay for all of them; ``(status, agent,
id)`` yields them in order and stops at ``n`` (``not_before`` is checked on the way: only
retries waiting out their backoff are skipped).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_executions_status_agent_id", "executions", ["status", "agent", "id"])
    op.drop_index("ix_executions_status_agent_not_before", table_name="executions")


def downgrade() -> None:
    op.create_index(
        "ix_executions_status_agent_not_before", "executions", ["status", "agent", "not_before"]
    )
    op.drop_index("ix_executions_status_agent_id", table_name="executions")
