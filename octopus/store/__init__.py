"""Persistence: one SQLAlchemy Core store for SQLite and PostgreSQL."""

from octopus.store.sql import SqlStore, open_store

__all__ = ["SqlStore", "open_store"]
