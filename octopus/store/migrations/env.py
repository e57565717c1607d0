"""Alembic environment: runs on the connection that ``SqlStore.migrate`` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from octopus.store.tables import metadata


def run_migrations(connection: Connection) -> None:
    """Apply the pending revisions inside the caller's transaction."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError("run migrations through SqlStore.migrate(), which supplies a connection")
run_migrations(_connection)
