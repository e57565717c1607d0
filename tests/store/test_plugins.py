"""Plugins: sync inserts, updates and deletes; reads."""

from __future__ import annotations

import pytest

from octopus.core.models import ActionSpec, ParamSpec
from octopus.errors import NotFound
from octopus.store import SqlStore
from octopus.store.base import PluginSource, PluginVersion
from tests.conftest import FixedClock

ACTIONS = (
    ActionSpec(
        name="echo",
        params=(
            ParamSpec(name="x", kind="POSITIONAL_OR_KEYWORD", annotation="int"),
            ParamSpec(name="y", kind="KEYWORD_ONLY", default="'é'", required=False),
        ),
        returns="int",
        doc="Echo x.",
    ),
)


def _version(name: str, sha: str, source: bytes = b"x = 1\n") -> PluginVersion:
    return PluginVersion(name=name, sha256=sha * 64, source=source, actions=ACTIONS)


def test_sync_inserts_updates_and_deletes(store: SqlStore, clock: FixedClock) -> None:
    assert store.sync_plugins([_version("a", "1"), _version("b", "2")], now=clock.now) == ["a", "b"]
    assert store.sync_plugins([_version("a", "1"), _version("b", "2")], now=clock.now) == []
    clock.advance(10)
    changed = store.sync_plugins(
        [_version("b", "3", b"\x00binary\xff"), _version("c", "4")], now=clock.now
    )
    assert changed == ["a", "b", "c"]
    plugins = store.list_plugins()
    assert [(p.name, p.sha256[0]) for p in plugins] == [("b", "3"), ("c", "4")]
    assert plugins[0].updated_at == clock.now
    assert plugins[0].actions == ACTIONS
    assert plugins[0].size == len(b"\x00binary\xff")
    assert store.get_plugin_source("b") == PluginSource(
        sha256="3" * 64, version=1, signature=None, source=b"\x00binary\xff"
    )
    assert store.get_plugin("c") == plugins[1]


def test_sync_to_nothing_deletes_everything(store: SqlStore, clock: FixedClock) -> None:
    store.sync_plugins([_version("a", "1")], now=clock.now)
    assert store.sync_plugins([], now=clock.now) == ["a"]
    assert store.list_plugins() == []


def test_unknown_plugin_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        store.get_plugin("nope")
    with pytest.raises(NotFound):
        store.get_plugin_source("nope")


def test_a_new_signature_or_version_of_the_same_file_is_stored(
    store: SqlStore, clock: FixedClock
) -> None:
    first = PluginVersion(name="a", sha256="1" * 64, source=b"x", actions=(), signature="s1")
    store.sync_plugins([first], now=clock.now)
    resigned = PluginVersion(
        name="a", sha256="1" * 64, source=b"x", actions=(), version=7, signature="s7"
    )
    assert store.sync_plugins([resigned], now=clock.now) == ["a"]
    stored = store.get_plugin_source("a")
    assert (stored.version, stored.signature) == (7, "s7")
    assert (store.get_plugin("a").version, store.get_plugin("a").signature) == (7, "s7")
