"""Parsing of command-line values: PLUGIN.ACTION, JSON-or-string arguments, given flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer._click.core import Context, ParameterSource

from octopus.config import OctopusSettings
from octopus.errors import ConfigError
from octopus.schemas.common import IDENTIFIER_PATTERN

S = TypeVar("S", bound=OctopusSettings)
_FLAG_SOURCE = "flag:"


def split_action(target: str) -> tuple[str, str]:
    """Split ``PLUGIN.ACTION`` into its two names; raise BadParameter naming the problem."""
    plugin, sep, action = target.partition(".")
    if not sep or not IDENTIFIER_PATTERN.match(plugin) or not IDENTIFIER_PATTERN.match(action):
        raise typer.BadParameter(f"'{target}' is not PLUGIN.ACTION (for example echo.echo)")
    return plugin, action


def json_or_string(raw: str) -> Any:
    """A positional argument: its JSON value when it parses as JSON, else the string itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_args(raw_args: list[str], arg_json: str | None) -> list[Any]:
    """Positional arguments: ``--arg-json`` (a JSON list) first, then each ARG."""
    args: list[Any] = []
    if arg_json is not None:
        value = _load(arg_json, "--arg-json")
        if not isinstance(value, list):
            raise typer.BadParameter("must be a JSON list", param_hint="--arg-json")
        args.extend(value)
    args.extend(json_or_string(raw) for raw in raw_args)
    return args


def parse_kwargs(raw: str | None) -> dict[str, Any]:
    """Keyword arguments from ``--kwargs`` (a JSON object); none when not given."""
    if raw is None:
        return {}
    value = _load(raw, "--kwargs")
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--kwargs")
    return value


def _load(raw: str, hint: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=hint) from None


def env_option(flag: str, env: str, help_text: str) -> Any:
    """An option that names its environment variable in ``--help``."""
    return typer.Option(flag, envvar=env, show_envvar=True, help=help_text, show_default=False)


def given_flags(ctx: Context, values: dict[str, Any]) -> dict[str, Any]:
    """Keep only values typed on the command line; the rest become None ("not given").

    Environment variables are left to the settings loader, so that a bad value is reported
    with the variable's name rather than as a flag.
    """
    return {
        name: value if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE else None
        for name, value in values.items()
    }


def load_settings(cls: type[S], ctx: Context) -> S:
    """Load ``cls`` from the flags typed in ``ctx``; a bad flag is reported by its name."""
    flags = given_flags(ctx, dict(ctx.params))
    try:
        settings: S = cls.load(**flags)
    except ConfigError as exc:
        if exc.message.startswith(_FLAG_SOURCE):
            raise _name_bad_flag(cls, ctx, flags) or exc from None
        raise
    return settings


def _name_bad_flag(cls: type[S], ctx: Context, flags: dict[str, Any]) -> ConfigError | None:
    """The settings loader says only "flag"; find which one by loading each alone."""
    names = {param.name: param.opts[0] for param in ctx.command.params if param.opts}
    for field, value in flags.items():
        if value is None:
            continue
        try:
            cls.load(**{field: value})
        except ConfigError as exc:
            if exc.message.startswith(_FLAG_SOURCE):
                flag = names.get(field, field)
                return ConfigError(flag + exc.message.removeprefix("flag"))
    return None


ActionTarget = Annotated[str, typer.Argument(metavar="PLUGIN.ACTION", help="What to run.")]
ActionArgs = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[ARGS]...", help="Positional arguments: JSON when they parse, else strings."
    ),
]
KwargsOption = Annotated[
    str | None, typer.Option("--kwargs", help="Keyword arguments as a JSON object.")
]
ArgJsonOption = Annotated[
    str | None,
    typer.Option("--arg-json", help="Positional arguments as a JSON list (before ARGS)."),
]
LogLevelOption = Annotated[
    str | None,
    env_option("--log-level", "OCTOPUS_LOG_LEVEL", "DEBUG, INFO, WARNING, ERROR (default: INFO)."),
]
LogFileOption = Annotated[
    Path | None,
    env_option("--log-file", "OCTOPUS_LOG_FILE", "Also log to this file, rotated by size."),
]
