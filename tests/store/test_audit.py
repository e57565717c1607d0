"""The audit log in the store: entries commit with their change, filters, and the CHECK."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from octopus.core.audit import AuditAction, AuditFilter, AuditNote
from octopus.core.enums import TaskType
from octopus.core.models import TaskSpec
from octopus.errors import InvalidTransition, NotFound
from octopus.store import SqlStore
from octopus.store.tables import audit_log
from tests.conftest import FixedClock

MakeSpec = Callable[..., TaskSpec]


def _note(action: AuditAction, subject: str, actor: str = "admin") -> AuditNote:
    return AuditNote(actor=actor, action=action, subject=subject, detail={"n": 1})


def test_entries_come_back_newest_first_and_filtered(store: SqlStore, clock: FixedClock) -> None:
    store.record_audit(_note(AuditAction.LOGIN, "dashboard", "dashboard"), now=clock.now)
    store.record_audit(_note(AuditAction.AGENT_REVOKED, "agent:a1"), now=clock.advance(60))
    store.record_audit(_note(AuditAction.AGENT_DRAINED, "agent:a1"), now=clock.advance(60))
    everything, total = store.list_audit(AuditFilter())
    assert total == 3
    assert [e.action for e in everything] == [
        AuditAction.AGENT_DRAINED,
        AuditAction.AGENT_REVOKED,
        AuditAction.LOGIN,
    ]
    assert everything[0].at == clock.now and everything[0].detail == {"n": 1}
    by_subject, _ = store.list_audit(AuditFilter(subject="agent:a1", actor="admin"))
    assert len(by_subject) == 2
    since, _ = store.list_audit(AuditFilter(since=clock.now - timedelta(seconds=60)))
    assert len(since) == 2
    page, total = store.list_audit(AuditFilter(action=AuditAction.LOGIN), limit=1, offset=1)
    assert (page, total) == ([], 1)


def test_an_unknown_action_is_refused_by_the_check(store: SqlStore, clock: FixedClock) -> None:
    row = {"at": clock.now, "actor": "admin", "action": "task.exploded", "subject": "x"}
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert(audit_log).values(**row, detail={}))


def test_an_audited_change_and_its_entry_commit_together(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    spec = make_spec(type=TaskType.INTERVAL, interval_seconds=60)
    task = store.create_task(spec, now=clock.now, actor="admin").task
    store.pause_task(task.id, now=clock.now, actor="dashboard")
    entries, _ = store.list_audit(AuditFilter(subject=f"task:{task.id}"))
    assert [(e.actor, e.action) for e in entries] == [
        ("dashboard", AuditAction.TASK_PAUSED),
        ("admin", AuditAction.TASK_CREATED),
    ]


def test_a_refused_change_rolls_its_entry_back(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    task = store.create_task(make_spec(), now=clock.now).task  # no actor: not audited
    with pytest.raises(InvalidTransition):
        store.pause_task(task.id, now=clock.now, actor="admin")
    with pytest.raises(NotFound):
        store.revoke_agent("nobody", now=clock.now, actor="admin")
    assert store.list_audit(AuditFilter()) == ([], 0)


def test_an_idempotent_repeat_of_a_create_is_not_audited_twice(
    store: SqlStore, clock: FixedClock, make_spec: MakeSpec
) -> None:
    for _ in range(2):
        store.create_task(
            make_spec(), now=clock.now, idempotency_key="k1", request_hash="h", actor="admin"
        )
    assert store.list_audit(AuditFilter())[1] == 1
