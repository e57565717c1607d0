"""``octopus plugin``: list a server's plugins, and check or run a plugin file locally."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer

from octopus.cli import render
from octopus.cli.arguments import (
    ActionArgs,
    ActionTarget,
    ArgJsonOption,
    KwargsOption,
    parse_args,
    parse_kwargs,
    split_action,
)
from octopus.cli.client import Client, ServerOption, TokenOption
from octopus.errors import PluginError
from octopus.schemas.plugins import ActionRead, PluginRead

app = typer.Typer(
    help="List plugins on a server; check and run plugin files locally.", no_args_is_help=True
)

EXIT_ACTION_FAILED = 1


@app.command("list")
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print the server's JSON.")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """List the plugins a server holds, with their sha256 and actions."""
    with Client.from_options(server, token) as client:
        data = client.get("/api/v1/plugins")
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    plugins = [PluginRead.model_validate(item) for item in data]
    console = render.stdout()
    console.print(render.plugins_table(plugins))


@app.command()
def check(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", exists=True, dir_okay=False, readable=True)
    ],
) -> None:
    """Parse a plugin file without running it and print its actions with their signatures."""
    from octopus.plugins.loader import inspect_source

    source = file.read_text(encoding="utf-8")
    specs = inspect_source(source, filename=str(file))
    actions = [ActionRead.model_validate(spec) for spec in specs]
    if not actions:
        raise PluginError(f"{file}: no public top-level functions, so no actions")
    render.stdout().print(
        render.actions_table(actions, title=f"{file.stem}: {len(actions)} actions")
    )


@app.command()
def run(
    target: ActionTarget,
    args: ActionArgs = None,
    kwargs: KwargsOption = None,
    arg_json: ArgJsonOption = None,
    plugins_dir: Annotated[
        Path,
        typer.Option(
            "--plugins-dir",
            envvar="OCTOPUS_PLUGINS_DIR",
            show_envvar=True,
            help="Where PLUGIN.py is.",
        ),
    ] = Path("plugins"),
) -> None:
    """Run an action in this process and print its JSON result (for plugin authors)."""
    plugin, action = split_action(target)
    call_args, call_kwargs = parse_args(args or [], arg_json), parse_kwargs(kwargs)
    function = _resolve(plugin, action, plugins_dir)
    try:
        inspect.signature(function).bind(*call_args, **call_kwargs)
    except TypeError as exc:
        raise PluginError(f"{action}(): {exc}") from None
    try:
        result = function(*call_args, **call_kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except Exception as exc:
        # The action's own frames only: the author's bug, not the command line's.
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
        raise typer.Exit(EXIT_ACTION_FAILED) from None
    typer.echo(_to_json(result))


def _resolve(plugin: str, action: str, plugins_dir: Path) -> Any:
    from octopus.plugins.importing import load_module, resolve_action
    from octopus.plugins.loader import BUILTIN_DIR, discover

    found = discover([BUILTIN_DIR, plugins_dir])
    if plugin not in found:
        known = ", ".join(sorted(found)) or "none"
        raise PluginError(f"plugin '{plugin}' not found in {plugins_dir} (known: {known})")
    module = load_module(found[plugin], name=plugin)
    return resolve_action(module, action)


def _to_json(result: Any) -> str:
    try:
        return json.dumps(result, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"the result is not JSON: {exc}") from None
