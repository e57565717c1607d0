"""The server's own secrets: the admin and join tokens, generated once and kept in the data dir."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

_TOKEN_BYTES = 32


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
    """The admin and join tokens in force, and which of them were generated just now."""

    admin: str
    join: str
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


def ensure_tokens(data_dir: Path, admin: str | None, join: str | None) -> ServerTokens:
    """Use the configured tokens, else the saved ones, else generate and save them (0600)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    admin_path, join_path = data_dir / "admin.token", data_dir / "join.token"
    generated: list[str] = []
    if admin is None:
        admin, created = _load_or_create(admin_path)
        generated += ["admin"] if created else []
    if join is None:
        join, created = _load_or_create(join_path)
        generated += ["join"] if created else []
    return ServerTokens(admin, join, admin_path, join_path, tuple(generated))
