"""Hot statements run straight on SQLite's cursor, compiled once by SQLAlchemy.

SQLAlchemy's execution path (the compiled-cache look-up, an execution context, events, a
result object and its rows) costs about 0.2 ms a statement after an idle pause here, three
times SQLite's own work for the small statements that dispatch a task: a single create runs
six of them while its caller waits. A prepared statement keeps what SQLAlchemy is needed for
(the SQL it compiles, and each column type's own conversions of parameters and results) and
skips the rest. On PostgreSQL, whose statements wait on the network anyway, for any
statement this module does not handle (parameters rendered into the SQL), and while anyone watches
statements (``echo``, cursor events), it runs through SQLAlchemy as before: the same rows
come back either way.

Only statements built once (module constants or cached builders) belong here: each one's
compiled form is kept for the life of the process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Connection, Insert, Select, Update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.schema import ScalarElementColumnDefault
from sqlalchemy.sql.selectable import ReturnsRows, TableClause
from sqlalchemy.sql.sqltypes import TupleType

Statement = Select[Any] | Insert | Update
Row = Mapping[str, Any]
"""A statement's parameters by name."""
Record = Mapping[Any, Any]
"""A row a statement returned, by column name (a dict here, SQLAlchemy's ``RowMapping`` on
its path)."""
Processor = Callable[[Any], Any] | None


_LIST_MARK = re.compile(r"__\[POSTCOMPILE_(\w+)\]")
"""Where SQLAlchemy's compiled SQL leaves room for a list parameter's placeholders."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    compiled: SQLCompiler
    binds: tuple[tuple[str, Processor], ...]
    """Each parameter's bind name and its type's conversion (of each item, for a list), in
    SQL order."""
    columns: tuple[tuple[str, Processor], ...]
    """Each result column's name and its type's conversion."""
    fixed: Mapping[str, Any]
    """The values of parameters the statement carries itself (``status = 'queued'``)."""
    lists: tuple[str, ...]
    """The names of the list parameters (``IN``), rendered per call with one placeholder per
    item, in the order their places appear in ``sql``."""
    between: tuple[str, ...]
    """``sql`` cut at each list parameter's place (one more piece than places)."""

    def statement(self, given: Row) -> tuple[str, list[Any]]:
        """The SQL and its positional values for one set of parameters.

        A list parameter gets one placeholder per item, rendered here: SQLAlchemy's own
        expansion (``construct_expanded_state``) cost 59 us for 100 ids, and a report batch
        runs seven such statements. An empty list takes SQLAlchemy's way, which renders the
        empty set its own way.
        """
        values = []
        for name, convert in self.binds:
            raw = given[name] if name in given else self.fixed[name]
            if name not in self.lists:
                values.append(raw if convert is None else convert(raw))
            elif not raw:
                return self._expanded_by_sqlalchemy(given)
            else:
                values.extend(raw if convert is None else [convert(item) for item in raw])
        if not self.lists:
            return self.sql, values
        pieces = [self.between[0]]
        for name, after in zip(self.lists, self.between[1:], strict=True):
            pieces += (", ".join("?" * len(given[name])), after)
        return "".join(pieces), values

    def _expanded_by_sqlalchemy(self, given: Row) -> tuple[str, list[Any]]:
        state = self.compiled.construct_expanded_state(dict(given))
        assert state.positiontup is not None
        processors = {**dict(self.binds), **state.processors}
        values = []
        for name in state.positiontup:
            raw, convert = state.parameters[name], processors.get(name)
            values.append(raw if convert is None else convert(raw))
        return state.statement, values


_compiled: dict[tuple[Statement, frozenset[str]], _Compiled | None] = {}


def rows(conn: Connection, stmt: Statement, params: Row | None = None) -> Sequence[Record]:
    """Run ``stmt`` once with ``params``; its result rows as mappings (none without any)."""
    given = _complete(stmt, params or {})
    compiled = _prepare(conn, stmt, given)
    if compiled is None:
        result = conn.execute(stmt, dict(given))
        return result.mappings().all() if result.returns_rows else []
    sql, values = compiled.statement(given)
    cursor = _cursor(conn)
    try:
        cursor.execute(sql, values)
        fetched = cursor.fetchall() if compiled.columns else []
    except conn.dialect.loaded_dbapi.Error as error:
        raise wrapped(conn.dialect, sql, values, error) from error
    finally:
        cursor.close()
    columns = compiled.columns
    return [
        {
            name: raw if convert is None else convert(raw)
            for (name, convert), raw in zip(columns, row, strict=True)
        }
        for row in fetched
    ]


def first_row(conn: Connection, stmt: Statement, params: Row | None = None) -> Record | None:
    """The first row of ``stmt``'s result, or None without any."""
    found = rows(conn, stmt, params)
    return found[0] if found else None


def scalar(conn: Connection, stmt: Statement, params: Row | None = None) -> Any:
    """The first column of the first row of ``stmt``'s result, or None without a row."""
    found = rows(conn, stmt, params)
    return next(iter(found[0].values())) if found else None


def execute_many(conn: Connection, stmt: Insert | Update, params: Sequence[Row]) -> None:
    """Run ``stmt`` once per row of ``params`` (all with the same keys), without results."""
    if not params:
        return
    given = [_complete(stmt, row) for row in params]
    compiled = _prepare(conn, stmt, given[0])
    if compiled is None or compiled.lists:
        conn.execute(stmt, [dict(row) for row in given])
        return
    values = [compiled.statement(row)[1] for row in given]
    cursor = _cursor(conn)
    try:
        cursor.executemany(compiled.sql, values)
    except conn.dialect.loaded_dbapi.Error as error:
        raise wrapped(conn.dialect, compiled.sql, values, error) from error
    finally:
        cursor.close()


def _complete(stmt: Statement, given: Row) -> Row:
    """An INSERT's parameters plus each omitted column's plain default (as SQLAlchemy adds
    it); other statements' as given."""
    if not isinstance(stmt, Insert):
        return given
    filled = dict(given)
    for key, value in _defaults(stmt.table):
        if key not in filled:
            filled[key] = value
    return filled


@cache
def _defaults(table: TableClause) -> tuple[tuple[str, Any], ...]:
    """Each column of ``table`` with a plain default, and that default."""
    return tuple(
        (column.key, column.default.arg)
        for column in table.columns
        if isinstance(column.default, ScalarElementColumnDefault)
    )


def _prepare(conn: Connection, stmt: Statement, given: Row) -> _Compiled | None:
    """``stmt`` compiled for SQLite (for an INSERT, for the columns in ``given``), or None
    where it must run through SQLAlchemy."""
    dialect = conn.dialect
    if dialect.name != "sqlite" or _watched(conn):
        return None
    key = (stmt, frozenset(given) if isinstance(stmt, Insert) else frozenset())
    try:
        return _compiled[key]
    except KeyError:
        built = _compiled[key] = _compile(stmt, dialect, sorted(key[1]))
        return built


def _watched(conn: Connection) -> bool:
    """Whether statements are being watched (``echo``, or a cursor event such as tracing or a
    test's query plans): they then run through SQLAlchemy, so the watcher sees them too."""
    dispatch = conn.dispatch
    return bool(conn.engine.echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute)


def _compile(stmt: Statement, dialect: Dialect, keys: list[str]) -> _Compiled | None:
    compiled = stmt.compile(dialect=dialect, column_keys=keys or None)
    assert isinstance(compiled, SQLCompiler)
    if (
        compiled.positiontup is None
        or compiled.insert_prefetch  # a default this module does not fill (a callable)
        or any(bind.literal_execute for bind in compiled.binds.values())
    ):
        return None
    if any(bind.expanding and isinstance(bind.type, TupleType) for bind in compiled.binds.values()):
        return None  # a tuple IN: SQLAlchemy renders its rows
    binds = tuple(
        (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        for name in compiled.positiontup
    )
    cut = _LIST_MARK.split(compiled.string)
    returned = list(stmt.exported_columns) if isinstance(stmt, ReturnsRows) else []
    if any(column.key is None for column in returned):
        return None  # an unlabelled expression: SQLAlchemy names it
    columns = tuple(
        (str(column.key), column.type.dialect_impl(dialect).result_processor(dialect, None))
        for column in returned
    )
    fixed = {
        name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
    }
    return _Compiled(
        compiled.string, compiled, binds, columns, fixed, tuple(cut[1::2]), tuple(cut[::2])
    )


def _cursor(conn: Connection) -> Any:
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver.cursor()


def wrapped(dialect: Dialect, sql: str, values: Any, error: Exception) -> DBAPIError:
    """The driver's error as SQLAlchemy would raise it (``IntegrityError`` and the like)."""
    instance = DBAPIError.instance(sql, values, error, dialect.loaded_dbapi.Error, dialect=dialect)
    assert isinstance(instance, DBAPIError)  # a driver error always makes one
    return instance
