"""Plugin files on the server's side: inspect their actions, hash, discover, bind a call.

Importing a file and finding an action in it is ``importing``'s (a worker needs only that).
"""

from __future__ import annotations

import ast
import inspect
import logging
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from octopus.core.models import ActionSpec, ParamSpec
from octopus.errors import PluginError
from octopus.plugins.importing import is_plugin_name

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
"""The plugins shipped with Octopus (system, http, shell)."""

_KINDS = {
    "posonly": inspect.Parameter.POSITIONAL_ONLY,
    "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "vararg": inspect.Parameter.VAR_POSITIONAL,
    "kwonly": inspect.Parameter.KEYWORD_ONLY,
    "kwarg": inspect.Parameter.VAR_KEYWORD,
}
_KIND_BY_NAME = {kind.name.lower(): kind for kind in _KINDS.values()}


def sha256_of(data: bytes) -> str:
    """Return the hex sha256 of ``data``: the identity of one plugin version."""
    import hashlib  # here: it loads OpenSSL (3.6 MB), which warm workers never need

    return hashlib.sha256(data).hexdigest()


def inspect_source(source: str, *, filename: str) -> tuple[ActionSpec, ...]:
    """List the actions of a plugin without importing or running it.

    Args:
        source: The plugin's Python source.
        filename: Used in error messages only.

    Returns:
        One ActionSpec per public top-level ``def`` or ``async def``, in source order
        (a later definition of the same name replaces the earlier one).

    Raises:
        PluginError: The source does not parse.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise PluginError(f"{filename}:{exc.lineno}: syntax error: {exc.msg}") from None
    except ValueError as exc:  # for example NUL bytes in the source
        raise PluginError(f"{filename}: cannot parse: {exc}") from None
    actions: dict[str, ActionSpec] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and is_plugin_name(node.name):
            actions.pop(node.name, None)
            actions[node.name] = _action_spec(node)
    return tuple(actions.values())


def _action_spec(node: ast.FunctionDef | ast.AsyncFunctionDef) -> ActionSpec:
    return ActionSpec(
        name=node.name,
        params=tuple(_param_specs(node.args)),
        returns=_text(node.returns),
        doc=ast.get_docstring(node),
    )


def _param_specs(args: ast.arguments) -> list[ParamSpec]:
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    params = [
        _param(arg, "posonly" if index < len(args.posonlyargs) else "args", default)
        for index, (arg, default) in enumerate(zip(positional, defaults, strict=True))
    ]
    if args.vararg is not None:
        params.append(_param(args.vararg, "vararg", None))
    params += [
        _param(arg, "kwonly", default)
        for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    if args.kwarg is not None:
        params.append(_param(args.kwarg, "kwarg", None))
    return params


def _param(arg: ast.arg, kind: str, default: ast.expr | None) -> ParamSpec:
    variadic = kind in ("vararg", "kwarg")
    return ParamSpec(
        name=arg.arg,
        kind=_KINDS[kind].name.lower(),
        annotation=_text(arg.annotation),
        default=_text(default),
        required=default is None and not variadic,
    )


def _text(node: ast.expr | None) -> str | None:
    return None if node is None else ast.unparse(node)


def check_call(spec: ActionSpec, args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
    """Say why ``args`` and ``kwargs`` cannot be passed to an action, or None if they can.

    Args:
        spec: The action, as listed by ``inspect_source``.
        args: Positional arguments.
        kwargs: Keyword arguments.

    Returns:
        A readable message such as ``add(): missing a required argument: 'b'``, or None.
    """
    parameters = [
        inspect.Parameter(
            param.name,
            kind,
            default=inspect.Parameter.empty if param.required or _is_variadic(kind) else None,
        )
        for param in spec.params
        for kind in [_KIND_BY_NAME[param.kind]]
    ]
    try:
        inspect.Signature(parameters).bind(*args, **kwargs)
    except TypeError as exc:
        return f"{spec.name}(): {exc}"
    return None


def _is_variadic(kind: inspect._ParameterKind) -> bool:
    return kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def discover(dirs: Sequence[Path]) -> dict[str, Path]:
    """Map plugin names to their files in ``dirs``; a later dir overrides an earlier one.

    A plugin is ``<name>.py`` whose name is an identifier not starting with ``_``. Anything
    that is not a regular file is skipped, and so is a symlink that points outside its dir.

    Args:
        dirs: Plugin folders, lowest precedence first. Missing folders are ignored.

    Returns:
        Plugin name to file path, sorted by name.
    """
    found: dict[str, Path] = {}
    for folder in dirs:
        if folder.is_dir():
            found.update(_discover_one(folder))
    return dict(sorted(found.items()))


def _discover_one(folder: Path) -> dict[str, Path]:
    root = folder.resolve()
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.suffix != ".py" or not is_plugin_name(entry.stem):
            continue
        if _is_contained_file(entry, root):
            found[entry.stem] = entry
        else:
            logger.warning("Skipping plugin file %s: not a regular file inside %s", entry, root)
    return found


def _is_contained_file(entry: Path, root: Path) -> bool:
    try:
        target = entry.resolve(strict=True)
        mode = target.stat().st_mode
    except (OSError, RuntimeError):  # dangling or looping symlink
        return False
    return stat.S_ISREG(mode) and target.parent == root
