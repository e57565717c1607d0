"""Plugins: the actions the server knows, with their signatures and versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from octopus.schemas.common import IDENTIFIER_PATTERN
from octopus.schemas.plugins import PluginRead
from octopus.server.auth import State, require_admin_or_agent
from octopus.server.present import plugin_read

router = APIRouter(
    prefix="/api/v1/plugins", tags=["plugins"], dependencies=[Depends(require_admin_or_agent)]
)

PluginNamePath = Annotated[str, Path(pattern=IDENTIFIER_PATTERN.pattern)]


@router.get("")
def list_plugins(state: State) -> list[PluginRead]:
    """Every plugin with its sha256 and actions (names, parameters, defaults, docstrings)."""
    return [plugin_read(p) for p in state.store.list_plugins()]


@router.get("/{name}")
def get_plugin(name: PluginNamePath, state: State) -> PluginRead:
    """One plugin."""
    return plugin_read(state.store.get_plugin(name))
