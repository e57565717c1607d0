"""Where one run goes, looked up without reading every agent.

A snapshot of every agent with its load cost a create time in proportion to the agents
enrolled: 45 ms with 10,000 online agents here, on the event loop. One run needs far less:
its ``specific`` target's row, or the agent ``core.dispatch.least_loaded`` would choose. An
agent with no queued or running execution is less loaded than any other, and among those the
one with the most slots, then the first name, comes first: the ``(status, concurrency,
name)`` index of agents gives them in that order. So the look-up reads idle online agents in
that order (each checked for work through the executions' status index) up to the first
whose labels match, usually in one statement; only when every matching agent holds work does
it read the busy ones and choose among them.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, Select, bindparam, exists, func, select

from octopus.core.dispatch import AgentLoad, labels_match, least_loaded
from octopus.core.enums import AgentStatus, ExecutionStatus
from octopus.store import _prepared as prepared
from octopus.store._settle import one_of
from octopus.store.tables import agents, executions

PAGE = 64
"""Idle agents read at a time while looking for one whose labels match."""

_NO_LIMIT = 2**31 - 1
"""Above any agent's slots (``concurrency`` is a 32-bit integer)."""

ACTIVE = frozenset({ExecutionStatus.QUEUED, ExecutionStatus.RUNNING})
"""Execution statuses that count toward an agent's load."""

_HOLDING = (
    select(executions.c.agent, func.count().label("n"))
    .where(one_of(executions.c.status, ACTIVE), executions.c.agent.is_not(None))
    .group_by(executions.c.agent)
    .subquery()
)
_LOAD_COLUMNS = (agents.c.name, agents.c.status, agents.c.labels, agents.c.concurrency)
_ONLINE = (agents.c.status == AgentStatus.ONLINE.value, agents.c.revoked_at.is_(None))
_BUSY_ONLINE = (
    select(*_LOAD_COLUMNS, _HOLDING.c.n)
    .join(_HOLDING, _HOLDING.c.agent == agents.c.name)
    .where(*_ONLINE)
)
_EVERY = (
    select(*_LOAD_COLUMNS, func.coalesce(_HOLDING.c.n, 0).label("n"))
    .outerjoin(_HOLDING, _HOLDING.c.agent == agents.c.name)
    .where(agents.c.revoked_at.is_(None))
)
_NAMED = _EVERY.where(agents.c.name == bindparam("p_name"))
_MOST_SLOTS_BELOW = select(func.max(agents.c.concurrency)).where(
    *_ONLINE, agents.c.concurrency < bindparam("p_below")
)
_HOLDS_WORK = exists().where(
    executions.c.agent == agents.c.name, one_of(executions.c.status, ACTIVE)
)


def _idle_page(postgres: bool) -> Select[tuple[str, str, object, int]]:
    """Idle online agents with the most slots below ``p_below``, by name after ``p_after``."""
    # PostgreSQL orders names by the database's collation unless told otherwise; Python, and
    # so least_loaded, by code point, as SQLite does.
    name = agents.c.name.collate("C") if postgres else agents.c.name
    return (
        select(*_LOAD_COLUMNS)
        .where(
            *_ONLINE,
            agents.c.concurrency == _MOST_SLOTS_BELOW.scalar_subquery(),
            ~_HOLDS_WORK,
            name > bindparam("p_after"),
        )
        .order_by(name)
        .limit(PAGE)
    )


_IDLE_PAGE = {postgres: _idle_page(postgres) for postgres in (False, True)}


def every_agent(conn: Connection) -> list[AgentLoad]:
    """Every agent that is not revoked, with its load: the snapshot a batch of runs is
    placed over."""
    return [_load(row) for row in prepared.rows(conn, _EVERY)]


def named(conn: Connection, name: str) -> AgentLoad | None:
    """Agent ``name`` (unless revoked), whatever its status, with its load."""
    row = prepared.first_row(conn, _NAMED, {"p_name": name})
    return None if row is None else _load(row)


def least_loaded_agent(conn: Connection, required: Mapping[str, str]) -> AgentLoad | None:
    """The online agent whose labels include ``required`` that ``least_loaded`` would choose
    among every agent, with its load; None if no online agent matches."""
    idle = _IDLE_PAGE[conn.dialect.name == "postgresql"]
    below = _NO_LIMIT
    while True:
        # The idle agents with the most slots below ``below``: usually the first page holds
        # a match, and this is the look-up's only statement.
        group: int | None = None
        after = ""
        while True:
            page = prepared.rows(conn, idle, {"p_below": below, "p_after": after})
            for row in page:
                if labels_match(row["labels"], required):
                    return _load({**row, "n": 0})
            if page:
                group, after = page[0]["concurrency"], page[-1]["name"]
            if len(page) < PAGE:
                break
        if group is None:  # every agent of the group holds work
            group = prepared.scalar(conn, _MOST_SLOTS_BELOW, {"p_below": below})
        if group is None or prepared.scalar(conn, _MOST_SLOTS_BELOW, {"p_below": group}) is None:
            break
        below = group
    busy = [_load(row) for row in prepared.rows(conn, _BUSY_ONLINE)]
    choice = least_loaded(busy, required)
    return next((load for load in busy if load.name == choice), None)


def _load(row: prepared.Record) -> AgentLoad:
    return AgentLoad(
        name=row["name"],
        status=AgentStatus(row["status"]),
        labels=row["labels"],
        concurrency=row["concurrency"],
        assigned=row["n"],
    )
