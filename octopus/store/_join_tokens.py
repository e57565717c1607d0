"""Join tokens, kept as sha256 hashes: one current token, retired ones remembered so a
restart never brings a rotated-away token back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, RowMapping, insert, select, update

from octopus.core.audit import JOIN_TOKEN_SUBJECT, AuditAction
from octopus.store import _audit
from octopus.store._dialect import lock_row
from octopus.store.base import JoinToken
from octopus.store.tables import join_tokens


def _token(row: RowMapping) -> JoinToken:
    return JoinToken(
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        replaced_at=row["replaced_at"],
    )


def find(conn: Connection, token_hash: str) -> JoinToken | None:
    """The join token with this hash, current or retired; None if it was never a join token."""
    row = conn.execute(select(join_tokens).where(join_tokens.c.token_hash == token_hash))
    found = row.mappings().first()
    return _token(found) if found is not None else None


def current(conn: Connection) -> JoinToken | None:
    """The join token in force, if any."""
    stmt = (
        select(join_tokens)
        .where(join_tokens.c.replaced_at.is_(None))
        .order_by(join_tokens.c.id.desc())
        .limit(1)
    )
    row = conn.execute(stmt).mappings().first()
    return _token(row) if row is not None else None


def _replace(
    conn: Connection, token_hash: str, *, now: datetime, expires_at: datetime | None
) -> None:
    # Locking the current row first makes two concurrent rotations take turns on PostgreSQL;
    # the UPDATE, a new statement, then also sees a token the other one just inserted.
    conn.execute(lock_row(select(join_tokens.c.id).where(join_tokens.c.replaced_at.is_(None))))
    conn.execute(
        update(join_tokens).where(join_tokens.c.replaced_at.is_(None)).values(replaced_at=now)
    )
    conn.execute(
        insert(join_tokens).values(
            token_hash=token_hash, created_at=now, expires_at=expires_at, replaced_at=None
        )
    )


def adopt(conn: Connection, token_hash: str, *, now: datetime) -> bool:
    """Make a configured or saved token current unless it was retired; see Store."""
    known = find(conn, token_hash)
    if known is not None:
        return known.replaced_at is None
    _replace(conn, token_hash, now=now, expires_at=None)
    return True


def rotate(
    conn: Connection, token_hash: str, *, now: datetime, expires_at: datetime | None, actor: str
) -> JoinToken:
    """Retire the current token and make ``token_hash`` current, with an audit entry."""
    _replace(conn, token_hash, now=now, expires_at=expires_at)
    detail = {"expires_at": expires_at.isoformat() if expires_at else None}
    _audit.note(
        conn, actor, AuditAction.JOIN_TOKEN_ROTATED, JOIN_TOKEN_SUBJECT, now=now, detail=detail
    )
    return JoinToken(created_at=now, expires_at=expires_at, replaced_at=None)
