"""The agent's plugin cache: ``<root>/<sha256>/<name>.py``, verified by hash, atomic installs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path

from octopus.errors import PluginError
from octopus.plugins.loader import BUILTIN_DIR, is_plugin_name, sha256_of

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Fetch = Callable[[str], Awaitable[bytes]]
"""Downloads the current source of the named plugin from the server."""


class PluginCache:
    """Plugin files by name and sha256; the server's hash is the only source of truth."""

    def __init__(self, root: Path, *, builtin_dir: Path | None = BUILTIN_DIR) -> None:
        """Use ``root`` for the cache; a built-in plugin whose hash matches is copied, not fetched.

        Args:
            root: Cache folder (created on demand).
            builtin_dir: Where local copies of the built-in plugins live, or None.
        """
        self.root = root
        self._builtin_dir = builtin_dir
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, name: str, sha256: str) -> Path:
        """Where version ``sha256`` of plugin ``name`` lives.

        Raises:
            PluginError: The name or hash is malformed (so it can never escape the cache).
        """
        if not is_plugin_name(name):
            raise PluginError(f"{name!r} is not a plugin name")
        if not _SHA256.fullmatch(sha256):
            raise PluginError(f"{sha256!r} is not a sha256 hex digest")
        return self.root / sha256 / f"{name}.py"

    def get(self, name: str, sha256: str) -> Path | None:
        """Return the installed file, or None if that version is not here."""
        path = self.path_for(name, sha256)
        return path if path.is_file() else None

    def install(self, name: str, sha256: str, data: bytes) -> Path:
        """Verify ``data`` against ``sha256`` and install it atomically.

        Raises:
            PluginError: The bytes do not have the expected hash; nothing is written.
        """
        path = self.path_for(name, sha256)
        actual = sha256_of(data)
        if actual != sha256:
            raise PluginError(
                f"plugin {name}: downloaded file has sha256 {actual}, expected {sha256}; refused"
            )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = path.with_name(f".{name}.{os.getpid()}.{id(data)}.tmp")
        try:
            with temp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        logger.info("Installed plugin %s version %s", name, sha256[:12], extra={"plugin": name})
        return path

    async def ensure(self, name: str, sha256: str, fetch: Fetch) -> Path:
        """Return the file for this version, copying a built-in or downloading it if needed.

        Raises:
            PluginError: The download does not have the expected hash.
            Whatever ``fetch`` raises (for example when the server is away).
        """
        path = self.get(name, sha256)
        if path is not None:
            return path
        async with self._locks.setdefault(f"{name}:{sha256}", asyncio.Lock()):
            path = self.get(name, sha256)
            if path is None:
                path = self.install(
                    name, sha256, self._builtin_bytes(name, sha256) or await fetch(name)
                )
        return path

    def _builtin_bytes(self, name: str, sha256: str) -> bytes | None:
        if self._builtin_dir is None:
            return None
        try:
            data = (self._builtin_dir / f"{name}.py").read_bytes()
        except OSError:
            return None
        return data if sha256_of(data) == sha256 else None

    def versions(self) -> dict[str, str]:
        """Installed plugins: name to sha256 of the most recently installed version."""
        newest: dict[str, tuple[float, str]] = {}
        for path in self.root.glob("*/*.py"):
            if not _SHA256.fullmatch(path.parent.name):
                continue
            stamp = path.stat().st_mtime
            if path.stem not in newest or stamp > newest[path.stem][0]:
                newest[path.stem] = (stamp, path.parent.name)
        return {name: sha for name, (_, sha) in sorted(newest.items())}

    def forget(self, current: Mapping[str, str], *, keep: Collection[str] = ()) -> list[str]:
        """Delete versions the server no longer lists, except the hashes in ``keep`` (in use).

        Args:
            current: Plugin name to current sha256, from the heartbeat answer.
            keep: Hashes still needed by running executions.

        Returns:
            The hashes removed.
        """
        wanted = set(current.values()) | set(keep)
        removed = []
        for folder in self._folders():
            if folder.name not in wanted:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        if removed:
            logger.info("Forgot %s old plugin version(s)", len(removed))
        return removed

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [
            entry
            for entry in self.root.iterdir()
            if entry.is_dir() and not entry.is_symlink() and _SHA256.fullmatch(entry.name)
        ]
