"""Keeps the stored plugins in step with the plugin folders, without a restart."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from octopus.core.models import ActionSpec
from octopus.errors import PluginError, ValidationFailed
from octopus.plugins.loader import check_call, discover, inspect_source, sha256_of
from octopus.plugins.signing import PluginSigner
from octopus.store.base import PluginVersion, Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Seen:
    stamp: tuple[int, int]
    version: PluginVersion | None


class PluginStore:
    """Scans plugin folders (built-ins first, so the operator's folder overrides them).

    A file is re-read only when its modification time or size changed. A file that no longer
    parses keeps its last good version in service and logs a warning, so a half-saved edit
    never takes a plugin away from running tasks.
    """

    def __init__(self, store: Store, folders: list[Path], signer: PluginSigner) -> None:
        self._store = store
        self._folders = folders
        self._signer = signer
        self._seen: dict[Path, _Seen] = {}
        self._current: dict[str, PluginVersion] = {}
        self._signed: dict[str, PluginVersion] | None = None

    def scan(self, now: datetime | None = None) -> list[str]:
        """Read changed files and store the result; returns the plugin names that changed."""
        now = now or datetime.now(UTC)
        files = discover(self._folders)
        versions: dict[str, PluginVersion] = {}
        for name, path in files.items():
            version = self._read(name, path) or self._current.get(name)
            if version is not None:
                versions[name] = self._sign(version, now)
        self._seen = {path: seen for path, seen in self._seen.items() if path in files.values()}
        changed = self._store.sync_plugins(list(versions.values()), now=now)
        self._current = versions
        for name in changed:
            logger.info("Plugin %s changed", name, extra={"plugin": name})
        return changed

    def _sign(self, version: PluginVersion, now: datetime) -> PluginVersion:
        """Number and sign a version: the same file keeps its number, a changed one gets a
        higher one (never reused, even after the plugin was removed and added again)."""
        if self._signed is None:
            self._signed = {
                p.name: PluginVersion(
                    name=p.name, sha256=p.sha256, source=b"", actions=(),
                    version=p.version, signature=p.signature,
                )
                for p in self._store.list_plugins()
            }  # fmt: skip
        previous = self._signed.get(version.name)
        if previous is not None and previous.sha256 == version.sha256:
            number = previous.version
        else:
            floor = previous.version + 1 if previous is not None else 1
            number = max(floor, int(now.timestamp() * 1000))
        signature = self._signer.sign(version.name, number, version.sha256)
        signed = replace(version, version=number, signature=signature)
        self._signed[version.name] = signed
        return signed

    def _read(self, name: str, path: Path) -> PluginVersion | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        seen = self._seen.get(path)
        if seen is not None and seen.stamp == stamp:
            return seen.version
        source = path.read_bytes()
        version: PluginVersion | None
        try:
            actions = inspect_source(source.decode("utf-8"), filename=str(path))
            version = PluginVersion(
                name=name, sha256=sha256_of(source), source=source, actions=actions
            )
        except (PluginError, UnicodeDecodeError) as exc:
            logger.warning("Plugin %s not loaded: %s", name, exc, extra={"plugin": name})
            version = None
        self._seen[path] = _Seen(stamp, version)
        return version

    def action(self, plugin: str, action: str) -> ActionSpec:
        """The named action; ValidationFailed naming ``plugin`` or ``action`` if unknown."""
        version = self._current.get(plugin)
        if version is None:
            raise ValidationFailed("plugin", f"no plugin named '{plugin}'")
        for spec in version.actions:
            if spec.name == action:
                return spec
        known = ", ".join(a.name for a in version.actions) or "none"
        raise ValidationFailed("action", f"plugin '{plugin}' has no action '{action}' ({known})")

    def check_call(
        self, plugin: str, action: str, args: list[object], kwargs: dict[str, object]
    ) -> None:
        """ValidationFailed unless the action exists and accepts these arguments."""
        problem = check_call(self.action(plugin, action), args, kwargs)
        if problem is not None:
            raise ValidationFailed("args", problem)

    @property
    def public_key(self) -> str:
        """The key agents pin at enrollment to verify plugin signatures."""
        return self._signer.public_key

    def versions(self) -> dict[str, str]:
        """The sha256 of every plugin in service, by name."""
        return {name: version.sha256 for name, version in self._current.items()}
