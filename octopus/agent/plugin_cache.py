"""The agent's plugin cache: ``<root>/<sha256>/<name>.py``, signed, verified, installed atomically.

A download is installed only if the server's signature of (name, version, sha256) checks out
with the key the agent pinned at enrollment, the bytes have that sha256, and the version is no
older than the highest version of that plugin the agent already accepted; otherwise nothing is
written, so nothing can be imported. Built-in plugins whose bytes equal the agent's own copy
are taken from that copy (they are part of the agent's install).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from octopus.errors import PluginError
from octopus.plugins.importing import is_plugin_name
from octopus.plugins.loader import BUILTIN_DIR, sha256_of

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

HIGHEST_FILE = "highest-versions.json"
"""The highest version of each plugin the agent accepted: it never goes back below it."""


@dataclass(frozen=True, slots=True)
class PluginDownload:
    """A plugin's source as the server sent it, with its signed version."""

    data: bytes
    version: int
    signature: str | None


Fetch = Callable[[str], Awaitable[PluginDownload]]
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
        self._public_key: str | None = None
        # Versions already found installed and current: every execution asks, and three file
        # reads each time cost the dispatch path a few hundred microseconds.
        self._ready: dict[tuple[str, str], Path] = {}

    def pin(self, public_key: str | None) -> None:
        """Trust plugin versions signed by this key (the server's, saved at enrollment)."""
        self._public_key = public_key

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
        _write_atomically(path, data)
        logger.info("Installed plugin %s version %s", name, sha256[:12], extra={"plugin": name})
        return path

    def ready(self, name: str, sha256: str) -> Path | None:
        """The file of a version ``ensure`` already answered for, without waiting; None if it
        has not (a first use, or a version forgotten since)."""
        return self._ready.get((name, sha256))

    async def ensure(self, name: str, sha256: str, fetch: Fetch) -> Path:
        """Return the file for this version, copying a built-in or downloading it if needed.

        Raises:
            PluginError: The download does not have the expected hash.
            Whatever ``fetch`` raises (for example when the server is away).
        """
        ready = self._ready.get((name, sha256))
        if ready is not None:
            return ready
        async with self._locks.setdefault(f"{name}:{sha256}", asyncio.Lock()):
            path = self.get(name, sha256)
            if path is None or not self._current(name, sha256):
                builtin = self._builtin_bytes(name, sha256)
                if builtin is not None:
                    path = self.install(name, sha256, builtin)
                else:
                    download = await fetch(name)
                    await self._check(name, sha256, download)
                    path = self.install(name, sha256, download.data)
                    self._accept(name, sha256, download.version)
        self._ready[(name, sha256)] = path
        return path

    async def _check(self, name: str, sha256: str, download: PluginDownload) -> None:
        """Refuse an unsigned, mis-signed, tampered or rolled-back download."""
        if self._public_key is None:
            raise PluginError(
                f"plugin {name}: no server key pinned in this agent's state dir (it enrolled "
                "before plugins were signed); remove the state dir to enroll again; refused"
            )
        await _verify_signature(self._public_key, name, sha256, download)
        actual = sha256_of(download.data)
        if actual != sha256:
            raise PluginError(
                f"plugin {name}: downloaded file has sha256 {actual}, expected {sha256}; refused"
            )
        highest = self._highest().get(name, 0)
        if download.version < highest:
            raise PluginError(
                f"plugin {name}: version {download.version} is older than version {highest} "
                "this agent already runs; refused"
            )

    def _version_path(self, name: str, sha256: str) -> Path:
        return self.path_for(name, sha256).with_suffix(".version")

    def _current(self, name: str, sha256: str) -> bool:
        """Whether a cached download is still no older than the highest accepted version."""
        try:
            held = int(self._version_path(name, sha256).read_text(encoding="ascii"))
        except FileNotFoundError:
            return True  # a built-in copy: the agent's own file
        except ValueError:
            return False
        return held >= self._highest().get(name, 0)

    def _highest(self) -> dict[str, int]:
        try:
            data = json.loads((self.root / HIGHEST_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _accept(self, name: str, sha256: str, version: int) -> None:
        """Remember this version for the file and as the plugin's floor from now on."""
        _write_atomically(self._version_path(name, sha256), str(version).encode())
        highest = self._highest()
        highest[name] = max(version, highest.get(name, 0))
        _write_atomically(self.root / HIGHEST_FILE, json.dumps(highest).encode())
        # A raised floor may leave other versions of this plugin behind: look at them again.
        for key in [key for key in self._ready if key[0] == name and key[1] != sha256]:
            del self._ready[key]

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
        for key in [key for key in self._ready if key[1] in removed]:
            del self._ready[key]
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


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temp file, so a crash leaves old or new."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{id(data)}.tmp")
    try:
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


async def _verify_signature(key: str, name: str, sha256: str, download: PluginDownload) -> None:
    """Check the signature in a short-lived process (see ``octopus.plugins.signing.main``)."""
    args = [key, name, str(download.version), sha256]
    if download.signature:
        args.append(download.signature)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "octopus.plugins.signing", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate()
    if process.returncode != 0:
        reason = stderr.decode("utf-8", "replace").strip()
        raise PluginError(reason or f"plugin {name}: the signature check failed; refused")
