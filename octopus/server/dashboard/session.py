"""Dashboard sessions: HMAC-signed cookies and per-session CSRF tokens.

A session is stateless: the cookie holds its expiry and CSRF token, signed with a key kept in
the data dir (mode 0600). The signature also covers a hash of the admin token, so changing the
admin token ends every session. Logging out remembers the session until it would have expired.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

COOKIE_NAME = "octopus_session"
SESSION_SECONDS = 12 * 3600
KEY_FILE = "dashboard.key"


def load_or_create_key(data_dir: Path) -> bytes:
    """The signing key saved in ``data_dir`` (created once, mode 0600)."""
    path = data_dir / KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
    return key


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser: when its session ends and the CSRF token of its forms."""

    expires: int
    csrf: str


@dataclass(slots=True)
class Sessions:
    """Issues and checks session cookies for one server process."""

    key: bytes
    admin_token: str
    ended: dict[str, int] = field(default_factory=dict)

    def _mac(self, payload: str) -> str:
        bound = payload + "." + hashlib.sha256(self.admin_token.encode()).hexdigest()
        return hmac.new(self.key, bound.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> tuple[Session, str]:
        """A new session and its cookie value."""
        expires = int((now if now is not None else time.time()) + SESSION_SECONDS)
        session = Session(expires=expires, csrf=secrets.token_urlsafe(24))
        payload = f"{session.expires}.{session.csrf}"
        return session, f"{payload}.{self._mac(payload)}"

    def check(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie that is genuine, unexpired and not logged out, else None."""
        if not cookie:
            return None
        expires, _, rest = cookie.partition(".")
        csrf, _, mac = rest.partition(".")
        payload = f"{expires}.{csrf}"
        if not expires.isdigit() or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        moment = now if now is not None else time.time()
        if int(expires) <= moment or csrf in self.ended:
            return None
        return Session(expires=int(expires), csrf=csrf)

    def end(self, session: Session, now: float | None = None) -> None:
        """Log a session out: its cookie is refused from now on."""
        moment = now if now is not None else time.time()
        self.ended = {k: v for k, v in self.ended.items() if v > moment}
        self.ended[session.csrf] = session.expires


def same_csrf(given: str | None, session: Session) -> bool:
    """Whether a submitted CSRF token is the session's own (constant time)."""
    return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())
