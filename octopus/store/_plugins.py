"""Plugin use cases: keep the stored plugins equal to the scanned folder, and read them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, select

from octopus.core.models import Plugin
from octopus.errors import NotFound
from octopus.store import _prepared as prepared
from octopus.store._dialect import upsert
from octopus.store._records import actions_to_json, plugin_from_row
from octopus.store.base import PluginSource, PluginVersion
from octopus.store.tables import plugins

_SHA256 = select(plugins.c.sha256).where(plugins.c.name == bindparam("p_name"))
_KNOWN_SHA256 = "octopus.plugin_sha256"
"""Key in ``Connection.info``: the hashes read on that connection, by plugin name."""


def plugin_sha256(conn: Connection, name: str) -> str | None:
    """The stored plugin's hash, which an execution leased at once carries; None if absent.

    On SQLite every write goes through the store's one kept writer connection, and only
    ``sync_plugins`` changes plugins, forgetting what that connection knew; so a hash read
    there stays true and is kept with the connection (the look-up was one statement of a
    single create's eight, 40-60 us after an idle pause). On PostgreSQL another replica may
    change a plugin at any time: it is read each time.
    """
    known: dict[str, str | None] = (
        conn.info.setdefault(_KNOWN_SHA256, {}) if conn.dialect.name == "sqlite" else {}
    )
    if name not in known:
        known[name] = prepared.scalar(conn, _SHA256, {"p_name": name})
    return known[name]


def sync_plugins(
    conn: Connection, versions: Sequence[PluginVersion], *, now: datetime
) -> list[str]:
    """Insert new plugins, update changed ones (file or signature), delete missing ones; the
    names that changed."""
    # Forgotten first: should this transaction roll back, what is read next is read anew.
    conn.info.pop(_KNOWN_SHA256, None)
    changed, missing = _differences(conn, versions)
    for version in changed:
        values = {
            "name": version.name,
            "sha256": version.sha256,
            "version": version.version,
            "signature": version.signature,
            "source": version.source,
            "actions": actions_to_json(version.actions),
            "size": len(version.source),
            "updated_at": now,
        }
        conn.execute(upsert(conn, plugins, values, key=["name"]))
    if missing:
        conn.execute(delete(plugins).where(plugins.c.name.in_(missing)))
    return sorted({v.name for v in changed} | set(missing))


def in_sync(conn: Connection, versions: Sequence[PluginVersion]) -> bool:
    """Whether the stored plugins are ``versions`` already (``sync_plugins`` would change
    nothing)."""
    changed, missing = _differences(conn, versions)
    return not changed and not missing


def _differences(
    conn: Connection, versions: Sequence[PluginVersion]
) -> tuple[list[PluginVersion], list[str]]:
    """The versions not stored as they are, and the names stored but not among them."""
    columns = select(plugins.c.name, plugins.c.sha256, plugins.c.version, plugins.c.signature)
    stored = {row.name: (row.sha256, row.version, row.signature) for row in conn.execute(columns)}
    changed = [v for v in versions if stored.get(v.name) != (v.sha256, v.version, v.signature)]
    return changed, sorted(set(stored) - {v.name for v in versions})


def list_plugins(conn: Connection) -> list[Plugin]:
    """Every stored plugin, by name."""
    stmt = select(plugins).order_by(plugins.c.name)
    return [plugin_from_row(row) for row in conn.execute(stmt).mappings()]


def get_plugin(conn: Connection, name: str) -> Plugin:
    """One plugin; NotFound if absent."""
    row = conn.execute(select(plugins).where(plugins.c.name == name)).mappings().first()
    if row is None:
        raise NotFound("plugin", name)
    return plugin_from_row(row)


def get_plugin_source(conn: Connection, name: str) -> PluginSource:
    """A plugin's source with its signed facts; NotFound if absent."""
    stmt = select(plugins.c.sha256, plugins.c.version, plugins.c.signature, plugins.c.source).where(
        plugins.c.name == name
    )
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound("plugin", name)
    return PluginSource(
        sha256=row.sha256, version=row.version, signature=row.signature, source=bytes(row.source)
    )
