"""The ``octopus`` Typer app and ``main()``: expected errors become one line on stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import httpx
import typer
from typer._click import exceptions as click_errors

from octopus import __version__
from octopus.cli import agent, audit, bench, join_token, plugin, server, task
from octopus.errors import OctopusError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="octopus",
    help=(
        "Octopus: distributed task orchestration. One server, many agents, Python plugins.\n\n"
        "Commands that talk to a server take --server (OCTOPUS_SERVER_URL) and --token "
        "(OCTOPUS_ADMIN_TOKEN)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("server")(server.server)
app.add_typer(agent.app, name="agent")
app.add_typer(task.app, name="task")
app.add_typer(plugin.app, name="plugin")
app.add_typer(bench.app, name="bench")
app.add_typer(audit.app, name="audit")
app.add_typer(join_token.app, name="join-token")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"octopus {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Octopus command line."""


def _fail(message: str, code: int) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    print(f"error: {first}", file=sys.stderr)
    return code


def _help_hint(exc: click_errors.UsageError) -> str:
    path = exc.ctx.command_path if exc.ctx else "octopus"
    return f" (see '{path} --help')"


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: sys.argv[1:]) and return the exit code."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="octopus", standalone_mode=False)
    except click_errors.NoArgsIsHelpError:
        # Building this error has already printed the help (Typer's rich formatter prints).
        return EXIT_USAGE
    except click_errors.UsageError as exc:
        return _fail(exc.format_message() + _help_hint(exc), EXIT_USAGE)
    except click_errors.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return _fail("interrupted", EXIT_INTERRUPTED)
    except OctopusError as exc:
        return _fail(exc.message, EXIT_ERROR)
    except httpx.HTTPError as exc:
        return _fail(f"HTTP: {exc}", EXIT_ERROR)
    return result if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point: exits with the command's code."""
    sys.exit(run())
