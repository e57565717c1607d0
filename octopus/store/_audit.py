"""The audit log: recording an entry inside the caller's transaction, and reading it back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, RowMapping, func, insert, select

from octopus.core.audit import AuditAction, AuditEntry, AuditFilter, AuditNote, task_subject
from octopus.core.models import JSON, TaskSpec
from octopus.store import _prepared as prepared
from octopus.store.base import Created, CreatedTasks, Fired
from octopus.store.tables import audit_log

T = TypeVar("T")


def _values(note: AuditNote, now: datetime) -> dict[str, Any]:
    return {
        "at": now,
        "actor": note.actor,
        "action": note.action.value,
        "subject": note.subject,
        "detail": note.detail,
    }


_INSERT = insert(audit_log)


def record(conn: Connection, note: AuditNote, *, now: datetime) -> None:
    """Insert one entry on ``conn``: it commits or rolls back with the change it records."""
    prepared.rows(conn, _INSERT, _values(note, now))


def note(
    conn: Connection,
    actor: str | None,
    action: AuditAction,
    subject: str,
    *,
    now: datetime,
    detail: dict[str, JSON] | None = None,
) -> None:
    """Record ``action`` by ``actor`` on ``subject``; nothing when no actor is given (a change
    made by the server's own machinery, or a test, names no one)."""
    if actor is not None:
        record(
            conn,
            AuditNote(actor=actor, action=action, subject=subject, detail=detail or {}),
            now=now,
        )


def after(
    conn: Connection,
    result: T,
    actor: str | None,
    action: AuditAction,
    subject: str,
    *,
    now: datetime,
    detail: dict[str, JSON] | None = None,
) -> T:
    """``note`` once the change that produced ``result`` is made, and hand ``result`` back, so
    a store method audits its change in one expression inside its transaction."""
    note(conn, actor, action, subject, now=now, detail=detail)
    return result


def _creation(task_id: int, spec: TaskSpec, actor: str) -> AuditNote:
    """A task's creation; the detail leaves out its arguments (they may carry secrets)."""
    detail: dict[str, JSON] = {
        "name": spec.name,
        "plugin": spec.plugin,
        "action": spec.action,
        "type": spec.type.value,
        "ownership": spec.ownership.value,
    }
    return AuditNote(
        actor=actor, action=AuditAction.TASK_CREATED, subject=task_subject(task_id), detail=detail
    )


def task_created(
    conn: Connection, created: Created, spec: TaskSpec, actor: str | None, *, now: datetime
) -> Created:
    """Audit a new task of ``spec`` (not an idempotent repeat)."""
    if created.created and actor is not None:
        record(conn, _creation(created.ids[0], spec, actor), now=now)
    return created


def tasks_created(
    conn: Connection,
    created: CreatedTasks,
    specs: Sequence[TaskSpec],
    actor: str | None,
    *,
    now: datetime,
) -> CreatedTasks:
    """Audit each task of a bulk create (not an idempotent repeat), in one statement;
    ``specs`` are the tasks' specs in the order of ``created.ids``."""
    if created.created and actor is not None and created.ids:
        pairs = zip(created.ids, specs, strict=True)
        rows = [_values(_creation(task_id, spec, actor), now) for task_id, spec in pairs]
        prepared.execute_many(conn, _INSERT, rows)
    return created


def ran_now(
    conn: Connection, fired: Fired, actor: str | None, task_id: int, *, now: datetime
) -> Fired:
    """Audit a run fired by hand, naming the run."""
    detail: dict[str, JSON] = {"run_id": fired.runs[0].id} if fired.runs else {}
    return after(
        conn, fired, actor, AuditAction.TASK_RUN_NOW, task_subject(task_id), now=now, detail=detail
    )


def changed_fields(old: TaskSpec, new: TaskSpec) -> list[str]:
    """The names of the spec fields an edit changed (never their values: they may be secret)."""
    return [f.name for f in fields(TaskSpec) if getattr(old, f.name) != getattr(new, f.name)]


def _entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=AuditAction(row["action"]),
        subject=row["subject"],
        detail=row["detail"],
    )


def list_audit(
    conn: Connection, wanted: AuditFilter, *, limit: int, offset: int
) -> tuple[list[AuditEntry], int]:
    """A page of entries matching ``wanted``, newest first, and how many match."""
    conditions: list[Any] = []
    if wanted.action is not None:
        conditions.append(audit_log.c.action == wanted.action.value)
    if wanted.actor is not None:
        conditions.append(audit_log.c.actor == wanted.actor)
    if wanted.subject is not None:
        conditions.append(audit_log.c.subject == wanted.subject)
    if wanted.since is not None:
        conditions.append(audit_log.c.at >= wanted.since)
    page = (
        select(audit_log)
        .where(*conditions)
        .order_by(audit_log.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = conn.execute(select(func.count()).select_from(audit_log).where(*conditions))
    return [_entry(row) for row in conn.execute(page).mappings()], int(total.scalar_one())
