"""Join tokens in the store: one current, retired ones never come back, expiry kept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Connection

from octopus.core.audit import AuditAction, AuditFilter
from octopus.store import SqlStore, _join_tokens
from octopus.store.base import JoinToken
from tests.conftest import FixedClock


def test_a_token_never_seen_is_adopted_and_retires_the_one_before(
    store: SqlStore, clock: FixedClock
) -> None:
    assert store.current_join_token() is None
    assert store.adopt_join_token("hash-a", now=clock.now) is True
    assert store.adopt_join_token("hash-a", now=clock.advance(1)) is True  # a restart
    assert store.adopt_join_token("hash-b", now=clock.advance(1)) is True
    a, b = store.join_token_for("hash-a"), store.join_token_for("hash-b")
    assert a is not None and a.replaced_at == clock.now
    assert b is not None and b.replaced_at is None
    assert store.join_token_for("hash-never") is None


def test_a_rotated_token_is_never_adopted_again(store: SqlStore, clock: FixedClock) -> None:
    store.adopt_join_token("hash-a", now=clock.now)
    expires = clock.now + timedelta(hours=1)
    rotated = store.rotate_join_token("hash-r", now=clock.now, expires_at=expires, actor="admin")
    assert (rotated.expires_at, rotated.replaced_at) == (expires, None)
    assert store.adopt_join_token("hash-a", now=clock.advance(5)) is False
    current = store.current_join_token()
    assert current is not None and current.expires_at == expires
    [entry], _ = store.list_audit(AuditFilter())
    assert (entry.action, entry.subject) == (AuditAction.JOIN_TOKEN_ROTATED, "join_token")
    assert "hash" not in str(entry.detail)


def test_two_servers_adopting_the_same_token_at_once_both_start(
    store: SqlStore, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.adopt_join_token("hash-a", now=clock.now)  # the other server, a moment earlier
    real_find = _join_tokens.find
    misses = iter([None])  # this server looked before the other one committed

    def racing_find(conn: Connection, token_hash: str) -> JoinToken | None:
        return next(misses, None) or real_find(conn, token_hash)

    monkeypatch.setattr(_join_tokens, "find", racing_find)
    assert store.adopt_join_token("hash-a", now=clock.advance(1)) is True
    current = store.current_join_token()
    assert current is not None and current.created_at == clock.now - timedelta(seconds=1)
