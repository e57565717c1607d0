"""The agent's state dir: its token (mode 0600, re-used on restart), plugin cache and scratch."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class AgentState:
    """Files the agent keeps between restarts, under one directory (mode 0700)."""

    TOKEN_FILE = "token"
    PLUGIN_KEY_FILE = "plugin-signing.pub"

    def __init__(self, state_dir: Path) -> None:
        """Remember ``state_dir``; nothing is created until ``ensure``."""
        self.root = state_dir

    @property
    def token_path(self) -> Path:
        """Where the agent token is stored."""
        return self.root / self.TOKEN_FILE

    @property
    def plugins_dir(self) -> Path:
        """Root of the plugin cache."""
        return self.root / "plugins"

    @property
    def work_dir(self) -> Path:
        """Scratch space for per-execution capture files."""
        return self.root / "work"

    def ensure(self) -> None:
        """Create the state dir (0700) and its subfolders."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in (self.plugins_dir, self.work_dir):
            folder.mkdir(mode=0o700, exist_ok=True)

    def load_token(self) -> str | None:
        """Return the saved agent token, or None if the agent has not enrolled yet."""
        try:
            token = self.token_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return token or None

    def save_token(self, token: str) -> None:
        """Save the agent token atomically, readable by this user only (mode 0600)."""
        self._save_private(self.TOKEN_FILE, token)

    def load_plugin_key(self) -> str | None:
        """The server's plugin signing key pinned at enrollment, or None."""
        try:
            key = (self.root / self.PLUGIN_KEY_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return key or None

    def save_plugin_key(self, key: str) -> None:
        """Pin the server's plugin signing key (mode 0600, like the token)."""
        self._save_private(self.PLUGIN_KEY_FILE, key)

    def _save_private(self, name: str, text: str) -> None:
        self.ensure()
        temp = self.root / f".{name}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.root / name)

    def forget_token(self) -> None:
        """Delete the saved token, so the next start enrolls again."""
        with contextlib.suppress(FileNotFoundError):
            self.token_path.unlink()
