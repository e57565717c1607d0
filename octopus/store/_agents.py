"""Agent use cases: enrollment, heartbeats, draining, revocation, and the reaper's sweep."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, Connection, bindparam, case, select, update

from octopus.core.enums import AgentStatus, ExecutionStatus, Ownership
from octopus.core.models import Agent, AgentFacts, Execution, ExecutionError
from octopus.errors import Conflict, NotFound
from octopus.store._dialect import Unindexed, upsert
from octopus.store._records import agent_from_row, error_to_json, execution_from_row, facts_values
from octopus.store._settle import Ended, conclude
from octopus.store.base import Beat, HeartbeatResult, Sweep, Wake
from octopus.store.tables import agents, executions

LEASE_EXPIRED = ExecutionError(
    type="LeaseExpired", message="the agent stopped renewing its lease on this execution"
)
AGENT_OFFLINE = ExecutionError(
    type="AgentOffline", message="the agent went offline before it claimed this execution"
)


def enroll_agent(
    conn: Connection, name: str, *, labels: dict[str, str], token_hash: str, now: datetime
) -> Agent:
    """Insert an agent, or enroll afresh a revoked one of that name; Conflict if it is taken."""
    fresh: dict[str, Any] = {
        "name": name,
        "token_hash": token_hash,
        "status": AgentStatus.ONLINE.value,
        "drain_requested": False,
        "labels": dict(labels),
        **facts_values(AgentFacts()),
        "last_heartbeat": now,
        "enrolled_at": now,
        "revoked_at": None,
    }
    stmt = upsert(conn, agents, fresh, key=["name"], where=agents.c.revoked_at.is_not(None))
    row = conn.execute(stmt.returning(*agents.c)).mappings().first()
    if row is None:
        raise Conflict(f"an agent named '{name}' is already enrolled")
    return agent_from_row(row)


def agent_for_token(conn: Connection, token_hash: str) -> Agent | None:
    """The unrevoked agent holding this token hash, or None."""
    stmt = select(agents).where(agents.c.token_hash == token_hash, agents.c.revoked_at.is_(None))
    row = conn.execute(stmt).mappings().first()
    return agent_from_row(row) if row is not None else None


def get_agent(conn: Connection, name: str) -> Agent:
    """One agent; NotFound if absent."""
    row = conn.execute(select(agents).where(agents.c.name == name)).mappings().first()
    if row is None:
        raise NotFound("agent", name)
    return agent_from_row(row)


def list_agents(conn: Connection) -> list[Agent]:
    """Every agent that is not revoked, by name."""
    stmt = select(agents).where(agents.c.revoked_at.is_(None)).order_by(agents.c.name)
    return [agent_from_row(row) for row in conn.execute(stmt).mappings()]


def record_heartbeat(
    conn: Connection,
    name: str,
    *,
    facts: AgentFacts,
    labels: dict[str, str],
    draining: bool,
    now: datetime,
    lease_seconds: float,
) -> HeartbeatResult:
    """Store facts, mark the agent online or draining, renew its leases, list what to stop."""
    beat = Beat(name=name, facts=facts, labels=labels, draining=draining, now=now)
    result = record_heartbeats(conn, [beat], lease_seconds=lease_seconds).get(name)
    if result is None:
        raise NotFound("agent", name)
    return result


def _heartbeat_update() -> Any:
    """One UPDATE for any number of heartbeats (executemany), built once."""
    status = case(
        (bindparam("b_draining", type_=Boolean), AgentStatus.DRAINING.value),
        (agents.c.drain_requested, AgentStatus.DRAINING.value),
        else_=AgentStatus.ONLINE.value,
    )
    columns = [*facts_values(AgentFacts()), "labels", "last_heartbeat"]
    return (
        update(agents)
        .where(agents.c.name == bindparam("b_name"), agents.c.revoked_at.is_(None))
        .values(
            status=status,
            **{column: bindparam(f"b_{column}", type_=agents.c[column].type) for column in columns},
        )
    )


def _lease_update() -> Any:
    lease_expires_at = executions.c.lease_expires_at
    return (
        update(executions)
        .where(
            executions.c.id == bindparam("b_id"),
            executions.c.agent == bindparam("b_agent"),
            executions.c.status == ExecutionStatus.RUNNING.value,
        )
        .values(lease_expires_at=bindparam("b_until", type_=lease_expires_at.type))
    )


_HEARTBEAT_UPDATE = _heartbeat_update()
_LEASE_UPDATE = _lease_update()
_STATUSES = select(agents.c.name, agents.c.status).where(
    agents.c.name.in_(bindparam("b_names", expanding=True)), agents.c.revoked_at.is_(None)
)


def record_heartbeats(
    conn: Connection, beats: Sequence[Beat], *, lease_seconds: float
) -> dict[str, HeartbeatResult]:
    """Apply many heartbeats with a fixed number of statements, whatever their count.

    A later beat of the same agent wins. Agents that are unknown or revoked are absent from
    the answer. Each beat renews its running executions' leases from its own ``now``.
    """
    latest = {beat.name: beat for beat in beats}
    if not latest:
        return {}
    conn.execute(_HEARTBEAT_UPDATE, [_heartbeat_params(beat) for beat in latest.values()])
    lease = timedelta(seconds=lease_seconds)
    leases = [
        {"b_id": execution_id, "b_agent": beat.name, "b_until": beat.now + lease}
        for beat in latest.values()
        for execution_id in beat.facts.running
    ]
    if leases:
        conn.execute(_LEASE_UPDATE, leases)
    names = list(latest)
    cancels = _pending_cancels_of(conn, names)
    return {
        name: HeartbeatResult(name=name, status=AgentStatus(status), cancel=cancels.get(name, []))
        for name, status in conn.execute(_STATUSES, {"b_names": names})
    }


def _heartbeat_params(beat: Beat) -> dict[str, Any]:
    values = {**facts_values(beat.facts), "labels": dict(beat.labels), "last_heartbeat": beat.now}
    params = {f"b_{column}": value for column, value in values.items()}
    return {**params, "b_name": beat.name, "b_draining": beat.draining}


_CANCELS = (
    select(executions.c.agent, executions.c.id)
    .where(
        executions.c.agent.in_(bindparam("b_names", expanding=True)),
        # Through the partial index of marked executions, not the agent's running ones.
        Unindexed(executions.c.status) == ExecutionStatus.RUNNING.value,
        executions.c.cancel_requested.is_(True),
    )
    .order_by(executions.c.id)
)


def _pending_cancels_of(conn: Connection, names: Sequence[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for agent, execution_id in conn.execute(_CANCELS, {"b_names": list(names)}):
        found.setdefault(agent, []).append(execution_id)
    return found


def pending_cancels(conn: Connection, name: str) -> list[int]:
    """Ids of the agent's running executions marked for stopping."""
    return _pending_cancels_of(conn, [name]).get(name, [])


def set_draining(conn: Connection, name: str, draining: bool) -> Agent:
    """Stop or resume handing work to an agent; an offline agent stays offline."""
    offline = AgentStatus.OFFLINE.value
    wanted = AgentStatus.DRAINING if draining else AgentStatus.ONLINE
    row = (
        conn.execute(
            update(agents)
            .where(agents.c.name == name)
            .values(
                drain_requested=draining,
                status=case((agents.c.status == offline, offline), else_=wanted.value),
            )
            .returning(*agents.c)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound("agent", name)
    return agent_from_row(row)


def revoke_agent(conn: Connection, name: str, *, now: datetime) -> Agent:
    """Revoke an agent's token (again is fine); it is offline from now on."""
    conn.execute(
        update(agents)
        .where(agents.c.name == name, agents.c.revoked_at.is_(None))
        .values(revoked_at=now, status=AgentStatus.OFFLINE.value)
    )
    return get_agent(conn, name)


_UNAVAILABLE = select(agents.c.name).where(
    agents.c.status.in_([AgentStatus.OFFLINE.value, AgentStatus.DRAINING.value])
)
"""Agents that take no new work: queued ``anyone`` work assigned to them goes back to the pool."""


def _silent(now: datetime, client_timeout: float) -> tuple[Any, ...]:
    """Agents not offline yet whose last heartbeat is older than ``client_timeout``."""
    cutoff = now - timedelta(seconds=client_timeout)
    return agents.c.status != AgentStatus.OFFLINE.value, agents.c.last_heartbeat < cutoff


def _lease_expired(now: datetime) -> tuple[Any, ...]:
    """Running executions whose lease ran out by ``now``."""
    return executions.c.status == ExecutionStatus.RUNNING.value, executions.c.lease_expires_at < now


def reap_due(conn: Connection, *, now: datetime, client_timeout: float) -> bool:
    """Whether ``reap`` would change anything: an agent fell silent, a lease expired, or
    queued work waits on an agent offline or draining (a superset: a queued ``all``
    execution on a draining agent stays, and the pass then changes nothing)."""
    checks = (
        select(agents.c.name).where(*_silent(now, client_timeout)),
        select(executions.c.id).where(*_lease_expired(now)),
        select(executions.c.id).where(
            executions.c.status == ExecutionStatus.QUEUED.value,
            executions.c.agent.in_(_UNAVAILABLE.scalar_subquery()),
        ),
    )
    return any(conn.execute(check.limit(1)).first() is not None for check in checks)


def reap(conn: Connection, *, now: datetime, client_timeout: float) -> Sweep:
    """Silent agents go offline; expired leases and stranded ``all`` executions become lost."""
    offline = conn.execute(
        update(agents)
        .where(*_silent(now, client_timeout))
        .values(status=AgentStatus.OFFLINE.value)
        .returning(agents.c.name)
    ).scalars()
    offline_names = sorted(offline)
    expired = _lose(conn, *_lease_expired(now), error=LEASE_EXPIRED, now=now)
    gone = select(agents.c.name).where(agents.c.status == AgentStatus.OFFLINE.value)
    queued_on_gone = (
        executions.c.status == ExecutionStatus.QUEUED.value,
        executions.c.agent.in_(gone.scalar_subquery()),
    )
    stranded = _lose(
        conn,
        *queued_on_gone,
        executions.c.ownership == Ownership.ALL.value,
        error=AGENT_OFFLINE,
        now=now,
    )
    freed = conn.execute(
        update(executions)
        .where(
            executions.c.status == ExecutionStatus.QUEUED.value,
            executions.c.agent.in_(_UNAVAILABLE.scalar_subquery()),
            executions.c.ownership == Ownership.ANYONE.value,
        )
        .values(agent=None)
        .returning(executions.c.id)
    ).all()
    ended = sorted(expired + stranded, key=lambda e: e.id)
    wake = conclude(conn, [Ended.of(e) for e in ended], now=now) | Wake(anyone=bool(freed))
    return Sweep(lost=[e.id for e in ended], offline=offline_names, wake=wake)


def _lose(
    conn: Connection, *conditions: Any, error: ExecutionError, now: datetime
) -> list[Execution]:
    rows = conn.execute(
        update(executions)
        .where(*conditions)
        .values(
            status=ExecutionStatus.LOST.value,
            error=error_to_json(error),
            finished_at=now,
            lease_expires_at=None,
        )
        .returning(*executions.c)
    ).mappings()
    return [execution_from_row(row) for row in rows]
