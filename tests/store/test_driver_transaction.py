"""SQLite write transactions begun and ended on the driver: what runs inside, prepared or
through SQLAlchemy, commits or rolls back as one, and the connection is left with no
transaction open either way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from octopus.store import SqlStore
from octopus.store import _prepared as prepared
from octopus.store._dialect import WRITE_OPTION, driver_transaction
from octopus.store.tables import agents, executions

NOW = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


def _agent(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "token_hash": f"hash-{name}",
        "status": "online",
        "labels": {},
        "running": [],
        "plugin_versions": {},
        "enrolled_at": NOW,
    }


@pytest.fixture
def conn(sqlite_store: SqlStore) -> Iterator[Connection]:
    with sqlite_store.engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
        yield connection


def _names(store: SqlStore) -> list[str]:
    with store.engine.connect() as reader:
        return list(reader.execute(select(agents.c.name).order_by(agents.c.name)).scalars())


def _idle(conn: Connection) -> bool:
    driver: Any = conn.connection.driver_connection
    return not conn.in_transaction() and not driver.in_transaction


def test_prepared_and_sqlalchemy_statements_commit_together(
    sqlite_store: SqlStore, conn: Connection
) -> None:
    with driver_transaction(conn):
        prepared.execute_many(conn, insert(agents), [_agent("a1")])
        conn.execute(insert(agents), _agent("a2"))  # joins the driver's transaction
        assert _names(sqlite_store) == []  # not visible to others before the commit
    assert _idle(conn)
    assert _names(sqlite_store) == ["a1", "a2"]


def test_a_failure_inside_rolls_back_both_kinds_of_statement(
    sqlite_store: SqlStore, conn: Connection
) -> None:
    for through_sqlalchemy in (False, True):
        with pytest.raises(RuntimeError), driver_transaction(conn):
            prepared.execute_many(conn, insert(agents), [_agent("a1")])
            if through_sqlalchemy:
                conn.execute(insert(agents), _agent("a2"))
            raise RuntimeError("the work failed")
        assert _idle(conn)
        assert _names(sqlite_store) == []
    with driver_transaction(conn):  # the connection takes the next transaction as usual
        prepared.execute_many(conn, insert(agents), [_agent("a3")])
    assert _names(sqlite_store) == ["a3"]


def test_a_transaction_begun_elsewhere_is_refused_not_joined(conn: Connection) -> None:
    driver: Any = conn.connection.driver_connection
    driver.execute("BEGIN")
    try:
        with pytest.raises(Exception, match="within a transaction"), driver_transaction(conn):
            pass
    finally:
        driver.rollback()
    with driver_transaction(conn):
        assert conn.execute(select(func.count()).select_from(agents)).scalar() == 0
    assert _idle(conn)


def test_a_failed_commit_rolls_back_and_the_next_write_begins(
    sqlite_store: SqlStore, conn: Connection
) -> None:
    # A deferred foreign key fails at COMMIT and SQLite leaves the transaction open, as a
    # full disk would: the kept writer connection must not stay stuck inside it.
    orphan = {"run_id": 999, "task_id": 999, "ownership": "anyone", "attempt": 1}
    orphan |= {"status": "queued", "not_before": NOW, "queued_at": NOW}
    driver: Any = conn.connection.driver_connection
    for through_sqlalchemy in (False, True):
        with pytest.raises(IntegrityError), driver_transaction(conn):
            driver.execute("PRAGMA defer_foreign_keys = ON")
            prepared.execute_many(conn, insert(agents), [_agent("a1")])
            if through_sqlalchemy:
                conn.execute(insert(executions), orphan)
            else:
                prepared.execute_many(conn, insert(executions), [orphan])
        assert _idle(conn)
        assert _names(sqlite_store) == []
    with driver_transaction(conn):
        prepared.execute_many(conn, insert(agents), [_agent("a2")])
    assert _names(sqlite_store) == ["a2"]
