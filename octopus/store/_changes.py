"""What a write transaction did, collected for the store's listener (metrics).

``SqlStore._write`` puts a fresh ``Changes`` in ``Connection.info`` for each transaction and
hands it to the listener only after the commit, so a rolled-back transaction counts nothing.
"""

from __future__ import annotations

from sqlalchemy import Connection

from octopus.store.base import Changes

KEY = "octopus.changes"


def changes_of(conn: Connection) -> Changes | None:
    """The collector of the transaction on ``conn``; None outside ``SqlStore._write``."""
    changes: Changes | None = conn.info.get(KEY)
    return changes
