"""Prepared statements: on SQLite they run on the driver's cursor, elsewhere (or while someone
watches statements) through SQLAlchemy, and either way they store and return exactly what
SQLAlchemy would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, bindparam, event, insert, select
from sqlalchemy.exc import IntegrityError

from octopus.store import SqlStore
from octopus.store import _prepared as prepared
from octopus.store._dialect import WRITE_OPTION
from octopus.store.tables import agents

NOW = datetime(2026, 12, 5, 4, 30, 15, 123456, tzinfo=UTC)
_AGENT_INSERT = insert(agents).returning(*agents.c)
_AGENT_BY_NAME = select(agents).where(agents.c.name == bindparam("p_name"))
_AGENTS_NAMED = select(agents.c.name).where(agents.c.name.in_(bindparam("p_names", expanding=True)))


def _agent(name: str) -> dict[str, Any]:
    """An agent row leaving its defaulted columns (concurrency, hostname, ...) out."""
    return {
        "name": name,
        "token_hash": f"hash-{name}",
        "status": "online",
        "labels": {"zone": "eu", "gpu": "yes"},
        "running": [],
        "plugin_versions": {},
        "enrolled_at": NOW,
        "last_heartbeat": NOW,
    }


@pytest.fixture
def conn(store: SqlStore) -> Iterator[Connection]:
    """A write transaction on the store's database, rolled back after the test."""
    with store.engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


def test_rows_come_back_as_sqlalchemy_returns_them(conn: Connection) -> None:
    inserted = prepared.rows(conn, _AGENT_INSERT, _agent("a1"))
    through_sqlalchemy = conn.execute(_AGENT_BY_NAME, {"p_name": "a1"}).mappings().one()
    assert inserted == [dict(through_sqlalchemy)]
    assert prepared.rows(conn, _AGENT_BY_NAME, {"p_name": "a1"}) == inserted
    row = inserted[0]
    assert row["labels"] == {"zone": "eu", "gpu": "yes"}  # JSON decoded
    assert row["enrolled_at"] == NOW  # an aware UTC datetime, to the microsecond
    assert row["concurrency"] == 1 and row["hostname"] == ""  # the columns' defaults
    assert row["drain_requested"] is False
    assert prepared.rows(conn, _AGENT_BY_NAME, {"p_name": "nobody"}) == []
    assert prepared.scalar(conn, _AGENT_BY_NAME, {"p_name": "nobody"}) is None


def test_many_rows_go_in_with_their_defaults(conn: Connection) -> None:
    prepared.execute_many(conn, insert(agents), [_agent("a1"), _agent("a2")])
    stored = conn.execute(select(agents).order_by(agents.c.name)).mappings().all()
    assert [row["name"] for row in stored] == ["a1", "a2"]
    assert all(row["concurrency"] == 1 and row["free_slots"] == 0 for row in stored)


def test_a_constraint_failure_is_sqlalchemys_integrity_error(conn: Connection) -> None:
    # The create's idempotency-key race is told apart by this type.
    prepared.rows(conn, _AGENT_INSERT, _agent("a1"))
    with pytest.raises(IntegrityError):
        prepared.rows(conn, _AGENT_INSERT, _agent("a1"))


def test_a_list_parameter_takes_one_placeholder_per_item(conn: Connection) -> None:
    prepared.execute_many(conn, insert(agents), [_agent("a1"), _agent("a2"), _agent("a3")])
    found = prepared.rows(conn, _AGENTS_NAMED, {"p_names": ["a1", "a3"]})
    assert sorted(row["name"] for row in found) == ["a1", "a3"]
    assert prepared.rows(conn, _AGENTS_NAMED, {"p_names": ["a2"]}) == [{"name": "a2"}]
    assert prepared.rows(conn, _AGENTS_NAMED, {"p_names": []}) == []


def test_list_parameters_among_others_are_converted_and_kept_in_order(conn: Connection) -> None:
    # Placeholders are rendered here, not by SQLAlchemy: each item is converted as its column
    # stores it (datetimes as text on SQLite), and values follow the SQL's order.
    later = NOW.replace(microsecond=0) + timedelta(hours=1)
    prepared.execute_many(
        conn,
        insert(agents),
        [_agent("a1"), _agent("a2"), {**_agent("a3"), "last_heartbeat": later}, _agent("a4")],
    )
    mixed = select(agents.c.name).where(
        agents.c.enrolled_at <= bindparam("p_at"),
        agents.c.name.in_(bindparam("p_names", expanding=True)),
        agents.c.status == "online",
        agents.c.last_heartbeat.in_(bindparam("p_beats", expanding=True)),
    )
    given = {"p_at": NOW, "p_names": ["a1", "a3", "a4"], "p_beats": [later, NOW]}
    found = prepared.rows(conn, mixed, given)
    assert sorted(row["name"] for row in found) == ["a1", "a3", "a4"]
    assert found == [dict(row) for row in conn.execute(mixed, given).mappings()]
    assert prepared.rows(conn, mixed, {**given, "p_beats": [later]}) == [{"name": "a3"}]
    assert prepared.rows(conn, mixed, {**given, "p_names": []}) == []


def test_a_watched_connection_shows_its_statements_to_the_watcher(
    store: SqlStore, conn: Connection
) -> None:
    seen: list[str] = []

    def watch(*args: Any) -> None:
        seen.append(args[2])

    event.listen(store.engine, "before_cursor_execute", watch)
    try:
        prepared.rows(conn, _AGENT_INSERT, _agent("a1"))
    finally:
        event.remove(store.engine, "before_cursor_execute", watch)
    assert [statement.split()[:3] for statement in seen] == [["INSERT", "INTO", "agents"]]
    assert prepared.scalar(conn, _AGENT_BY_NAME, {"p_name": "a1"}) is not None
