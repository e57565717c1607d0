"""Wire models for plugins and their actions."""

from __future__ import annotations

from datetime import datetime

from octopus.schemas.common import Outbound


class ParamRead(Outbound):
    """One parameter of an action, as written in its source."""

    name: str
    kind: str
    annotation: str | None
    default: str | None
    required: bool


class ActionRead(Outbound):
    """One action: its signature and docstring."""

    name: str
    params: list[ParamRead]
    returns: str | None
    doc: str | None


class PluginRead(Outbound):
    """One plugin: its current sha256 and actions."""

    name: str
    sha256: str
    version: int
    """Raised whenever the file changes; signed together with the name and sha256."""
    size: int
    updated_at: datetime
    actions: list[ActionRead]
