"""Importing a plugin file and finding an action in it: all a worker process needs.

Kept apart from ``loader`` (which reads plugin sources to describe and check their actions),
so that a warm worker imports neither the source inspection nor the models it describes
actions with: about 2 MB less in each worker.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from octopus.core.names import IDENTIFIER_PATTERN
from octopus.errors import PluginError

MODULE_PREFIX = "octopus_plugin_"
"""Prefix of the module names under which plugin files are imported."""

_module_numbers = itertools.count(1)


def is_plugin_name(name: str) -> bool:
    """Say whether ``name`` can name a plugin or action: an ASCII identifier, not private."""
    return bool(IDENTIFIER_PATTERN.fullmatch(name)) and not name.startswith("_")


def load_module(path: Path, *, name: str) -> ModuleType:
    """Import a plugin file under a fresh, unique module name.

    Args:
        path: The plugin file.
        name: The plugin name, used in the module name and in messages.

    Raises:
        PluginError: The file is missing or raised while being imported (the original
            exception is chained).
    """
    module_name = f"{MODULE_PREFIX}{name}_{next(_module_numbers)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {name}: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered first so dataclasses, pickling and typing inside the plugin can find it.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[module_name]
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise PluginError(f"plugin {name}: import failed: {type(exc).__name__}: {exc}") from exc
    return module


def resolve_action(module: ModuleType, action: str) -> Callable[..., Any]:
    """Return the action function ``action`` defined by the plugin ``module``.

    Raises:
        PluginError: The name is private or not an identifier, does not exist, or is not a
            function defined in the plugin itself (an imported helper is not an action).
    """
    plugin = module.__name__
    if not is_plugin_name(action):
        raise PluginError(f"{action!r} is not a public action name")
    function = getattr(module, action, None)
    if function is None:
        raise PluginError(f"plugin has no action {action!r}")
    if not callable(function) or getattr(function, "__module__", None) != plugin:
        raise PluginError(f"{action!r} is not an action defined by the plugin")
    return function  # type: ignore[no-any-return]
