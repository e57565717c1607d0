"""``octopus server``: run the API, agent protocol and plugin store in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from octopus.cli.arguments import LogFileOption, LogLevelOption, env_option, load_settings
from octopus.config import ServerSettings
from octopus.server.secrets import ServerTokens


def server(
    ctx: typer.Context,
    server_host: Annotated[
        str | None, env_option("--host", "OCTOPUS_SERVER_HOST", "Bind address (default: 0.0.0.0).")
    ] = None,
    server_port: Annotated[
        int | None, env_option("--port", "OCTOPUS_SERVER_PORT", "Port (default: 8000).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        env_option(
            "--data-dir",
            "OCTOPUS_DATA_DIR",
            "State: SQLite file, generated tokens (admin.token, mode 0600), logs "
            "(default: ./octopus-data).",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        env_option(
            "--database-url",
            "OCTOPUS_DATABASE_URL",
            "sqlite:///... or postgresql://... (default: SQLite file in the data dir).",
        ),
    ] = None,
    plugins_dir: Annotated[
        Path | None,
        env_option(
            "--plugins-dir", "OCTOPUS_PLUGINS_DIR", "Plugin source folder (default: ./plugins)."
        ),
    ] = None,
    local_agents: Annotated[
        int | None,
        env_option(
            "--local-agents",
            "OCTOPUS_LOCAL_AGENTS",
            "Agents to run beside the server (default: 0).",
        ),
    ] = None,
    log_level: LogLevelOption = None,
    log_file: LogFileOption = None,
) -> None:
    """Run the server: REST API, agent protocol and plugin store.

    The admin and join tokens come from OCTOPUS_ADMIN_TOKEN and OCTOPUS_JOIN_TOKEN; when they
    are not set, the server generates them on first start and saves them in the data dir.
    """
    settings = load_settings(ServerSettings, ctx)
    from octopus.server.app import run_server  # imported late: the CLI starts fast without it

    code = run_server(settings, on_tokens=_show_tokens)
    if code:
        raise typer.Exit(code)


def _show_tokens(tokens: ServerTokens) -> None:
    """Print generated tokens once; say where the others are."""
    if "admin" in tokens.generated:
        print(f"Generated an admin token, saved in {tokens.admin_path}:\n  {tokens.admin}")
    else:
        print(f"Admin token: OCTOPUS_ADMIN_TOKEN, or the one saved in {tokens.admin_path}")
    if "join" in tokens.generated:
        print(f"Generated a join token for agents, saved in {tokens.join_path}:\n  {tokens.join}")
    elif tokens.join is None:
        print(
            "Join token: rotated on another server sharing this database; only its hash is "
            "here (see the rotating server's join.token, or run 'octopus join-token rotate')"
        )
