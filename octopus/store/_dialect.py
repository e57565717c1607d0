"""The few places where SQLite and PostgreSQL differ: engines, claim locking, upsert, retries."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Select,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from octopus.store import _prepared as prepared

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_POOL_SIZE = 40
WRITE_OPTION = "octopus_write"
"""Execution option marking a connection whose transaction will write (SQLite: BEGIN IMMEDIATE)."""

_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
_MIGRATION_LOCK_KEY = 0x6F63746F70  # "octop": one advisory lock id for concurrent migrations


def engine_for(url: str) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql://...`` (driven by psycopg 3).

    Raises:
        ValueError: the URL names another backend.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        # As many pooled connections as the server's worker threads (anyio's 40): a connection
        # opened past the pool is closed after use, and reopening costs its PRAGMAs each time.
        # Last in, first out: a steady load keeps reusing a few connections instead of all 40
        # in turn, each growing its own page cache (up to ~2 MB): 50 MB less server memory
        # after the bench's scenarios, at the same speed.
        engine = create_engine(
            parsed.set(drivername="sqlite+pysqlite"),
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=10,
            pool_use_lifo=True,
        )
        _configure_sqlite(engine)
        return engine
    if backend in ("postgresql", "postgres"):
        driver = parsed.set(drivername="postgresql+psycopg")
        return create_engine(driver, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise ValueError(f"unsupported database URL scheme '{parsed.drivername}'")


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, and explicit BEGINs (pysqlite's own are unreliable)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Taking the write lock up front avoids a deferred upgrade failing with SQLITE_BUSY.
        writes = conn.get_execution_options().get(WRITE_OPTION, False)
        # Straight to the driver: through ``exec_driver_sql`` the BEGIN cost a single create
        # 0.05 ms more (an execution context and its events). A failure (the database locked
        # by another process past the busy timeout) is then sqlite3's own error, unwrapped;
        # no SQLite write is retried on it either way.
        driver: Any = conn.connection.driver_connection
        if driver.in_transaction:  # begun on the driver already (``driver_transaction``)
            return
        driver.execute("BEGIN IMMEDIATE" if writes else "BEGIN")


@contextmanager
def driver_transaction(conn: Connection) -> Iterator[None]:
    """A SQLite write transaction begun and ended on the driver: SQLAlchemy's transaction
    (its objects, events and pool bookkeeping) cost a single create 0.1 ms after an idle pause
    here, twice what SQLite's own BEGIN and COMMIT take. A statement run through SQLAlchemy in
    between still works: its transaction joins this one and ends with it."""
    driver: Any = conn.connection.driver_connection
    driver.execute("BEGIN IMMEDIATE")
    try:
        yield
        if conn.in_transaction():
            conn.commit()
        else:
            try:
                driver.commit()
            except conn.dialect.loaded_dbapi.Error as error:
                raise prepared.wrapped(conn.dialect, "COMMIT", (), error) from error
    except BaseException:
        # A failed COMMIT (a full disk) leaves SQLite's transaction open: left so, every
        # later write on this kept connection would fail to begin.
        if conn.in_transaction():
            conn.rollback()
        if driver.in_transaction:
            driver.rollback()
        raise


class WriterLock:
    """The in-process guard around write transactions. A SQLite database has a single writer,
    so its writes take turns here; PostgreSQL takes concurrent writers, so there this guards
    nothing and is never free to hold ahead (its writes wait on the network and on row locks,
    which must not happen on the event loop)."""

    def __init__(self, single_writer: bool) -> None:
        # Reentrant, so a caller holding it across a whole store call (``hold_if_free``) lets
        # that call's own transaction in.
        self._lock = threading.RLock() if single_writer else None

    def __enter__(self) -> None:
        if self._lock is not None:
            self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        if self._lock is not None:
            self._lock.release()

    @contextmanager
    def hold_if_free(self) -> Iterator[bool]:
        """Hold the single writer for this thread if no one holds it now (True), or hold
        nothing (False): the writer is busy, or the database has no single writer."""
        held = self._lock is not None and self._lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held and self._lock is not None:
                self._lock.release()


def writer_lock(engine: Engine) -> WriterLock:
    """The writer guard for ``engine``'s database."""
    return WriterLock(single_writer=engine.dialect.name == "sqlite")


def lock_for_claim(stmt: Select[Any], of: Table) -> Select[Any]:
    """Lock candidate rows so concurrent claimers skip each other's (PostgreSQL only).

    SQLite needs nothing: its single writer already serializes claims.
    """
    return stmt.with_for_update(skip_locked=True, of=of)


def lock_row(stmt: Select[Any]) -> Select[Any]:
    """Lock a row that a settle step reads and then updates (a no-op on SQLite)."""
    return stmt.with_for_update()


def lock_in_order(conn: Connection, table: Table, ids: Iterable[int]) -> None:
    """Lock rows by id in ascending order (PostgreSQL), so a transaction that then updates
    them in any order never locks in a cycle with another; SQLite's single writer needs none."""
    if conn.dialect.name == "postgresql" and (ordered := sorted(ids)):
        conn.execute(_ordered_lock(table), {"p_ids": ordered})


@cache
def _ordered_lock(table: Table) -> Select[Any]:
    by_ids = table.c.id.in_(bindparam("p_ids", expanding=True))
    return select(table.c.id).where(by_ids).order_by(table.c.id).with_for_update()


def upsert(
    conn: Connection,
    table: Table,
    values: Mapping[str, Any],
    *,
    key: Sequence[str],
    where: Any = None,
) -> Insert:
    """An INSERT that updates the row already holding ``key`` (optionally only ``where``)."""
    module: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = module.insert(table).values(**values)
    updates = {name: stmt.excluded[name] for name in values if name not in key}
    upserted: Insert = stmt.on_conflict_do_update(
        index_elements=list(key), set_=updates, where=where
    )
    return upserted


def is_retryable(error: DBAPIError) -> bool:
    """Whether PostgreSQL aborted the transaction for a deadlock or serialization failure."""
    return getattr(error.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


@contextmanager
def migration_lock(conn: Connection) -> Iterator[None]:
    """Serialize migrations of several servers starting at once (PostgreSQL advisory lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    yield


def insert_returning_ids(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` and return their new ids in the order given, in as few statements as
    the backend allows.

    PostgreSQL (and a single row): one ``INSERT ... RETURNING``, batched by SQLAlchemy in
    parameter order. SQLite: SQLAlchemy cannot keep a batched ``RETURNING`` in order there and
    would send one statement per row; instead the ids are assigned here as SQLite itself
    assigns them (one past the largest id), which is safe because the write transaction holds
    SQLite's single write lock, and the rows go in one ``executemany``.
    """
    if not rows:
        return []
    if len(rows) == 1:
        return [prepared.rows(conn, _insert_returning(table), rows[0])[0]["id"]]
    if conn.dialect.name != "sqlite":
        return [row.id for row in conn.execute(_insert_returning(table), rows)]
    first = prepared.scalar(conn, _largest_id(table)) + 1
    ids = list(range(first, first + len(rows)))
    prepared.execute_many(
        conn, _insert(table), [{**row, "id": id_} for row, id_ in zip(rows, ids, strict=True)]
    )
    return ids


@cache
def _insert(table: Table) -> Insert:
    return insert(table)


@cache
def _insert_returning(table: Table) -> Insert:
    return insert(table).returning(table.c.id, sort_by_parameter_order=True)


@cache
def _largest_id(table: Table) -> Select[Any]:
    return select(func.coalesce(func.max(table.c.id), 0).label("largest"))


def minute_of(conn: Connection, column: Any) -> Any:
    """A SQL expression for the UTC minute of a timestamp column, as ``YYYY-MM-DD HH:MM`` text.

    SQLite keeps naive UTC text (its first 16 characters are the minute); PostgreSQL formats.
    """
    if conn.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:MI")
    return func.substr(column, 1, 16)


class Unindexed(ColumnElement[Any]):
    """A column in a condition that SQLite must not answer through an index on it (it is
    rendered ``+column``).

    SQLite keeps no statistics here, so given ``task_id = ? AND status = ?`` it may walk
    every execution of that status through the status index rather than the task's few; a
    condition on ``Unindexed(status)`` leaves the choice to the other column. PostgreSQL
    plans from statistics and gets the column unchanged.
    """

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]  # noqa: RUF012 (SQLAlchemy reads it per class)

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(Unindexed)
def _plain_column(element: Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(Unindexed, "sqlite")
def _unary_plus(element: Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)
