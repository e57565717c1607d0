"""Shared fixtures: a database on each backend, a migrated store, task specs and a fixed clock.

``database_url`` and ``store`` are parametrized over ``sqlite`` (a file in ``tmp_path``) and
``postgres`` (one database per test session on 127.0.0.1:5432, emptied before each test).
A PostgreSQL server that cannot be reached fails the tests that need it; it never skips them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from octopus.core.models import TaskSpec
from octopus.store import SqlStore, open_store
from octopus.store.tables import metadata

PG_ADMIN_URL = os.environ.get(
    "OCTOPUS_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
"""Where every fixed clock starts: far from any real 'now', so a leaked real time shows."""

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def _libpq(url: str) -> str:
    """A SQLAlchemy-style URL as psycopg takes it (no ``+driver``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# ---- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The maintenance database of the test PostgreSQL server (``OCTOPUS_TEST_PG_ADMIN_URL``)."""
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[str]:
    """A database of its own for this test session (and xdist worker), migrated, then dropped."""
    name = f"octopus_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(_libpq(pg_admin_url), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is required at {pg_admin_url}: {error}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    store = open_store(url)
    store.migrate()
    store.close()
    try:
        yield url
    finally:
        with psycopg.connect(_libpq(pg_admin_url), autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


def _empty(url: str) -> None:
    """Delete every row and restart the ids; migrate first if a test dropped the schema."""
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        present = conn.execute("SELECT to_regclass('public.executions')").fetchone()
        if present is None or present[0] is None:
            conn.close()
            store = open_store(url)
            store.migrate()
            store.close()
            return
        names = sql.SQL(", ").join(sql.Identifier(t.name) for t in metadata.sorted_tables)
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))


@pytest.fixture
def postgres_url(pg_database: str) -> str:
    """The session's PostgreSQL database, migrated and empty for this test."""
    _empty(pg_database)
    return pg_database


# ---- backends ----------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, once per backend: a SQLite file, or the PostgreSQL test database.

    The SQLite file is not migrated yet; the PostgreSQL one is (``migrate()`` is a no-op).
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'octopus.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def migrated_store(url: str) -> Iterator[SqlStore]:
    """Open and migrate the store at ``url``, yield it, close it (the body of a fixture)."""
    opened = open_store(url)
    opened.migrate()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    """A migrated, empty store on a SQLite file only (for what only a single writer does)."""
    yield from migrated_store(f"sqlite:///{tmp_path / 'octopus.db'}")


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    """A migrated, empty store on each backend, closed after the test."""
    yield from migrated_store(database_url)


# ---- factories and time ------------------------------------------------------------------


def _make_spec(**overrides: Any) -> TaskSpec:
    values: dict[str, Any] = {"name": "demo.echo", "plugin": "demo", "action": "echo"}
    values.update(overrides)
    return TaskSpec(**values)


@pytest.fixture
def make_spec() -> Callable[..., TaskSpec]:
    """``make_spec(**overrides)``: an adhoc ``anyone`` TaskSpec of ``demo.echo`` by default."""
    return _make_spec


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def utc() -> Callable[..., datetime]:
    """``utc(2030, 1, 2, 3, 4)``: an aware UTC datetime."""
    return _utc


@dataclass
class FixedClock:
    """A clock that moves only when told: pass ``clock.now`` wherever code takes ``now``."""

    now: datetime = EPOCH

    def advance(self, seconds: float) -> datetime:
        """Move forward by ``seconds`` and return the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    """A FixedClock at 2030-01-01T00:00:00Z; ``clock()`` or ``clock.now`` read it."""
    return FixedClock()
