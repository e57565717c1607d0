"""Persistence: one SQLAlchemy Core store for SQLite and PostgreSQL."""
