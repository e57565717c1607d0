"""Agents taking work and reporting on it: claims under lease, and fenced outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, case, func, select, update

from octopus.core.dispatch import labels_match
from octopus.core.enums import AgentStatus, ExecutionStatus, Ownership
from octopus.core.models import Execution, ExecutionError
from octopus.errors import Fenced, NotFound
from octopus.store import _prepared as prepared
from octopus.store._dialect import lock_for_claim
from octopus.store._records import EXECUTION_COLUMNS, execution_from_row
from octopus.store._settle import (
    Ended,
    clean_log,
    conclude,
    end_execution,
    finish_executions,
    start_runs,
)
from octopus.store._tasks import get_execution
from octopus.store.base import Claimed, Outcome, Wake
from octopus.store.tables import agents, executions, plugins, tasks

SCAN_PAGE = 100
SCAN_LIMIT = 1000
"""How many unassigned executions one claim looks at, at most, for a label match."""
CANDIDATES_PER_SLOT = 4
"""Matches gathered per slot, so concurrent claimers skipping each other's locks still fill up."""

_CANDIDATE = select(
    executions.c.id,
    tasks.c.plugin,
    tasks.c.action,
    tasks.c.args,
    tasks.c.kwargs,
    tasks.c.timeout_seconds,
    tasks.c.labels,
).select_from(executions.join(tasks, tasks.c.id == executions.c.task_id))


# The claim's statements are built once with bound parameters: building and coercing them on
# every claim cost more than running them (SQLAlchemy's cache key work, ``coercions.expect``).
_NOW = bindparam("b_now", type_=executions.c.not_before.type)
_AGENT_ROW = select(agents.c.status, agents.c.labels).where(
    agents.c.name == bindparam("b_agent"), agents.c.revoked_at.is_(None)
)
_DUE_ANYONE = (
    executions.c.status == ExecutionStatus.QUEUED.value,
    executions.c.not_before <= _NOW,
    executions.c.agent.is_(None),
    executions.c.ownership == Ownership.ANYONE.value,
)
_ASSIGNED = lock_for_claim(
    _CANDIDATE.where(
        executions.c.status == ExecutionStatus.QUEUED.value,
        executions.c.not_before <= _NOW,
        executions.c.agent == bindparam("b_agent"),
    )
    .order_by(executions.c.id)
    .limit(bindparam("b_limit")),
    of=executions,
)
_UNASSIGNED_MATCHED = lock_for_claim(
    _CANDIDATE.where(*_DUE_ANYONE, executions.c.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(executions.c.id)
    .limit(bindparam("b_limit")),
    of=executions,
)
_UNASSIGNED_PAGE = (
    select(executions.c.id, tasks.c.labels)
    .select_from(executions.join(tasks, tasks.c.id == executions.c.task_id))
    .where(*_DUE_ANYONE, executions.c.id > bindparam("b_after"))
    .order_by(executions.c.id)
    .limit(SCAN_PAGE)
)
_CURRENT_SHA256 = (
    select(plugins.c.sha256)
    .select_from(tasks.join(plugins, plugins.c.name == tasks.c.plugin))
    .where(tasks.c.id == executions.c.task_id)
    .scalar_subquery()
)
# The ids are the whole guard: they are rows this transaction found due and locked (SQLite's
# single writer; FOR UPDATE on PostgreSQL). A status condition here made SQLite walk every
# queued execution through the status index instead of looking up the few ids.
_START = (
    update(executions)
    .where(executions.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(
        status=ExecutionStatus.RUNNING.value,
        agent=bindparam("b_agent"),
        started_at=bindparam("b_started", type_=executions.c.started_at.type),
        lease_expires_at=bindparam("b_lease", type_=executions.c.lease_expires_at.type),
        plugin_sha256=_CURRENT_SHA256,
    )
    .returning(*EXECUTION_COLUMNS)
)


def claim_executions(
    conn: Connection,
    agent: str,
    *,
    slots: int,
    now: datetime,
    lease_seconds: float,
    due_by: datetime | None = None,
) -> list[Claimed]:
    """Lease up to ``slots`` executions due by ``due_by`` (default ``now``) to an online agent:
    its own first, then anyone's."""
    row = prepared.first_row(conn, _AGENT_ROW, {"b_agent": agent})
    if row is None or row["status"] != AgentStatus.ONLINE.value or slots <= 0:
        return []
    due = now if due_by is None else due_by
    params = {"b_agent": agent, "b_now": due, "b_limit": slots}
    candidates = list(prepared.rows(conn, _ASSIGNED, params))
    if len(candidates) < slots:
        candidates += _unassigned(conn, row["labels"], slots=slots - len(candidates), now=due)
    if not candidates:
        return []
    params = {
        "b_ids": [candidate["id"] for candidate in candidates],
        "b_agent": agent,
        "b_started": now,
        "b_lease": now + timedelta(seconds=lease_seconds),
    }
    started = sorted(
        (execution_from_row(row) for row in prepared.rows(conn, _START, params)),
        key=lambda execution: execution.id,
    )
    by_id = {candidate["id"]: candidate for candidate in candidates}
    claimed = [_claimed(e, by_id[e.id]) for e in started if e.plugin_sha256 is not None]
    failed = [
        ended
        for execution in started
        if execution.plugin_sha256 is None
        for ended in _fail_missing_plugin(conn, execution, agent=agent, now=now)
    ]
    conclude(conn, [Ended.of(e) for e in failed], now=now)
    start_runs(conn, (c.execution.run_id for c in claimed), now=now)
    return claimed


def _unassigned(
    conn: Connection, labels: dict[str, str], *, slots: int, now: datetime
) -> Sequence[prepared.Record]:
    """Unassigned ``anyone`` executions whose task labels the agent's labels satisfy.

    Labels are matched in Python over an unlocked scan of ids and labels only; the matches
    are then locked and read whole, so a claim never holds rows it will not take (which would
    starve concurrent claimers).
    """
    matched: list[int] = []
    after = 0
    for _ in range(SCAN_LIMIT // SCAN_PAGE):
        page = prepared.rows(conn, _UNASSIGNED_PAGE, {"b_now": now, "b_after": after})
        matched += [row["id"] for row in page if labels_match(labels, row["labels"])]
        if len(matched) >= slots * CANDIDATES_PER_SLOT or len(page) < SCAN_PAGE:
            break
        after = page[-1]["id"]
    if not matched:
        return []
    params = {"b_now": now, "b_ids": matched, "b_limit": slots}
    return prepared.rows(conn, _UNASSIGNED_MATCHED, params)


def _fail_missing_plugin(
    conn: Connection, started: Execution, *, agent: str, now: datetime
) -> list[Execution]:
    error = ExecutionError(type="PluginNotFound", message="the task's plugin no longer exists")
    outcome = Outcome(status=ExecutionStatus.FAILED, error=error, finished_at=now)
    ended = end_execution(conn, started.id, agent=agent, outcome=outcome, now=now)
    return [ended] if ended is not None else []


def _claimed(execution: Execution, candidate: prepared.Record) -> Claimed:
    assert execution.plugin_sha256 is not None  # claims without a plugin fail instead
    return Claimed(
        execution=execution,
        plugin=candidate["plugin"],
        action=candidate["action"],
        args=candidate["args"],
        kwargs=candidate["kwargs"],
        timeout_seconds=candidate["timeout_seconds"],
        plugin_sha256=execution.plugin_sha256,
    )


def append_output(
    conn: Connection, execution_id: int, *, agent: str, text: str, limit: int
) -> None:
    """Append live output to a running execution the agent holds, up to ``limit`` characters.

    Fenced if the agent does not hold it. Output past the limit is dropped and the log marked
    truncated; the final report replaces the live log with its bounded head and tail anyway.
    """
    log = func.coalesce(executions.c.log, "")
    room = limit - func.length(log)
    fits = func.length(text) <= room
    stmt = (
        update(executions)
        .where(
            executions.c.id == execution_id,
            executions.c.agent == agent,
            executions.c.status == ExecutionStatus.RUNNING.value,
        )
        .values(
            log=case((fits, log + clean_log(text)), else_=log),
            log_truncated=case((fits, executions.c.log_truncated), else_=True),
        )
        .returning(executions.c.id)
    )
    if conn.execute(stmt).first() is None:
        current = get_execution(conn, execution_id)
        raise Fenced(f"execution {execution_id} is {current.status.value}, not running on {agent}")


def finish_execution(
    conn: Connection, execution_id: int, *, agent: str, outcome: Outcome, now: datetime
) -> tuple[Execution, Wake]:
    """Record an outcome for a running execution the agent holds; Fenced if it does not."""
    [finished], wake = finish_executions(conn, agent, [(execution_id, outcome)], now=now)
    if finished.refusal == "not_found":
        raise NotFound("execution", execution_id)
    if finished.status is None:
        raise Fenced(finished.reason or f"execution {execution_id} is not running on {agent}")
    return get_execution(conn, execution_id), wake
