"""A claim finds its agent's executions marked for stopping without reading its running ones.

Every claim (and heartbeat) asks which of the agent's running executions are marked
``cancel_requested``. Through ``(status, agent, id)`` that read every running execution the
agent held (up to its workers plus claim-ahead, 66 by default) to find, almost always, none:
a seventh of a claim's store time. A partial index holds only the marked executions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MARKED = sa.column("cancel_requested", sa.Boolean()).is_(True)


def upgrade() -> None:
    op.create_index(
        "ix_executions_cancel_requested",
        "executions",
        ["agent", "id"],
        sqlite_where=_MARKED,
        postgresql_where=_MARKED,
    )


def downgrade() -> None:
    op.drop_index("ix_executions_cancel_requested", table_name="executions")
