"""The audit log, and join tokens kept hashed in the store so they can be rotated and expire.

Revision ID: 0004
Revises: 0003
Create Date: 2026-01-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from octopus.core.audit import AuditAction
from octopus.store.tables import one_of_sql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AUDIT_INDEXES = (
    ("ix_audit_log_action_id", ["action", "id"]),
    ("ix_audit_log_actor_id", ["actor", "id"]),
    ("ix_audit_log_subject_id", ["subject", "id"]),
    ("ix_audit_log_at", ["at"]),
)


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``audit_log`` and ``join_tokens``."""
    # Built from the enum, like the status checks: a later revision that adds an action must
    # replace this constraint.
    width = max(len(member.value) for member in AuditAction) + 8
    op.create_table(
        "audit_log",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("action", sa.String(width), nullable=False),
        sa.Column("subject", sa.String(160), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.CheckConstraint(
            one_of_sql("action", AuditAction), name=op.f("ck_audit_log_action_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    for name, columns in _AUDIT_INDEXES:
        op.create_index(name, "audit_log", columns)
    op.create_table(
        "join_tokens",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("replaced_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_join_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_join_tokens_token_hash")),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("join_tokens")
    for name, _ in reversed(_AUDIT_INDEXES):
        op.drop_index(name, table_name="audit_log")
    op.drop_table("audit_log")
