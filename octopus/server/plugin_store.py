"""Keeps the stored plugins in step with the plugin folders, without a restart."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from octopus.core.models import ActionSpec
from octopus.errors import PluginError, ValidationFailed
from octopus.plugins.loader import check_call, discover, inspect_source, sha256_of
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

    def __init__(self, store: Store, folders: list[Path]) -> None:
        self._store = store
        self._folders = folders
        self._seen: dict[Path, _Seen] = {}
        self._current: dict[str, PluginVersion] = {}

    def scan(self, now: datetime | None = None) -> list[str]:
        """Read changed files and store the result; returns the plugin names that changed."""
        files = discover(self._folders)
        versions: dict[str, PluginVersion] = {}
        for name, path in files.items():
            version = self._read(name, path) or self._current.get(name)
            if version is not None:
                versions[name] = version
        self._seen = {path: seen for path, seen in self._seen.items() if path in files.values()}
        changed = self._store.sync_plugins(list(versions.values()), now=now or datetime.now(UTC))
        self._current = versions
        for name in changed:
            logger.info("Plugin %s changed", name, extra={"plugin": name})
        return changed

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

    def versions(self) -> dict[str, str]:
        """The sha256 of every plugin in service, by name."""
        return {name: version.sha256 for name, version in self._current.items()}
