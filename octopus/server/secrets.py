"""The server's own secrets: the admin token, kept in the data dir, and the join token, whose
hash the store keeps (so it can be rotated and expire) and whose text the data dir keeps."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from octopus.store.base import Store

logger = logging.getLogger(__name__)

_TOKEN_BYTES = 32
ADMIN_TOKEN_FILE = "admin.token"
JOIN_TOKEN_FILE = "join.token"


def new_token() -> str:
    """A fresh random bearer token."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a high-entropy token (a salt adds nothing at 256 bits of entropy)."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class ServerTokens:
    """The admin token, the join token known to this process at start (None when another
    replica rotated it: only its hash is shared), and which of them were generated just now."""

    admin: str
    join: str | None
    admin_path: Path
    join_path: Path
    generated: tuple[str, ...]


def _load_or_create(path: Path) -> tuple[str, bool]:
    if path.exists():
        return path.read_text().strip(), False
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token, True


def save_join_token(data_dir: Path, token: str) -> Path:
    """Replace ``<data_dir>/join.token`` atomically with ``token`` (mode 0600)."""
    path = data_dir / JOIN_TOKEN_FILE
    partial = path.with_name(f".{JOIN_TOKEN_FILE}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(partial, path)
    return path


def _saved_join_token(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _adopted(store: Store, token: str, origin: str, now: datetime) -> bool:
    if store.adopt_join_token(hash_token(token), now=now):
        return True
    logger.warning(
        "The join token from %s was retired by a rotation and stays retired; agents enroll with "
        "the one the rotation returned",
        origin,
    )
    return False


def resolve_join_token(
    store: Store, data_dir: Path, configured: str | None, *, now: datetime
) -> tuple[str | None, bool]:
    """The join token in force and whether it was generated just now.

    A configured token (``OCTOPUS_JOIN_TOKEN``) or the one saved in the data dir becomes
    current in the store unless a rotation retired it (a restart never revives it). With
    neither, and none in the store, a new one is generated and saved. None: the current token
    was made elsewhere (another replica rotated it), and only its hash is known here.
    """
    if configured is not None and _adopted(store, configured, "OCTOPUS_JOIN_TOKEN", now):
        return configured, False
    path = data_dir / JOIN_TOKEN_FILE
    saved = _saved_join_token(path)
    if saved is not None:
        return (saved, False) if _adopted(store, saved, str(path), now) else (None, False)
    if configured is not None or store.current_join_token() is not None:
        return None, False
    token = new_token()
    save_join_token(data_dir, token)
    store.adopt_join_token(hash_token(token), now=now)
    return token, True


def ensure_tokens(
    data_dir: Path, admin: str | None, join: str | None, *, store: Store, now: datetime
) -> ServerTokens:
    """Use the configured admin token, else the saved one, else generate and save it (0600);
    settle the join token with the store (see ``resolve_join_token``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    admin_path, join_path = data_dir / ADMIN_TOKEN_FILE, data_dir / JOIN_TOKEN_FILE
    generated: list[str] = []
    if admin is None:
        admin, created = _load_or_create(admin_path)
        generated += ["admin"] if created else []
    join_token, created = resolve_join_token(store, data_dir, join, now=now)
    generated += ["join"] if created else []
    return ServerTokens(admin, join_token, admin_path, join_path, tuple(generated))
