"""``octopus agent``: run an agent, or list, show, drain, resume and revoke agents on a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from octopus.cli import render
from octopus.cli.arguments import LogFileOption, LogLevelOption, env_option, load_settings
from octopus.cli.client import Client, ServerOption, TokenOption
from octopus.config import AgentSettings
from octopus.schemas.agents import AgentRead
from octopus.schemas.common import Page

app = typer.Typer(
    help=(
        "Run an agent (plain 'octopus agent'), or manage the agents of a server "
        "(list, show, drain, resume, revoke)."
    ),
    invoke_without_command=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The agent's name.")]


@app.callback()
def run(
    ctx: typer.Context,
    server_url: Annotated[
        str | None,
        env_option(
            "--server", "OCTOPUS_SERVER_URL", "Server URL (default: http://localhost:8000)."
        ),
    ] = None,
    agent_name: Annotated[
        str | None,
        env_option("--name", "OCTOPUS_AGENT_NAME", "Unique agent name (default: the host name)."),
    ] = None,
    join_token: Annotated[
        str | None,
        env_option("--join-token", "OCTOPUS_JOIN_TOKEN", "Token to enroll with, on first start."),
    ] = None,
    labels: Annotated[
        str | None,
        env_option("--labels", "OCTOPUS_LABELS", "Labels that tasks can select on: k=v,k2=v2."),
    ] = None,
    concurrency: Annotated[
        int | None,
        env_option("--concurrency", "OCTOPUS_CONCURRENCY", "Executions at a time (default: 2)."),
    ] = None,
    prefetch: Annotated[
        int | None,
        env_option(
            "--prefetch",
            "OCTOPUS_PREFETCH",
            "Most executions claimed ahead of free workers while recent ones took under "
            "0.5 s; 0 claims only for free workers (default: 256).",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        env_option(
            "--state-dir",
            "OCTOPUS_STATE_DIR",
            "Agent token and plugin cache (default: ./agent-state).",
        ),
    ] = None,
    allow_shell: Annotated[
        bool, env_option("--allow-shell", "OCTOPUS_ALLOW_SHELL", "Allow the built-in shell plugin.")
    ] = False,
    heartbeat_interval: Annotated[
        float | None,
        env_option(
            "--heartbeat-interval",
            "OCTOPUS_HEARTBEAT_INTERVAL",
            "Seconds between heartbeats (default: 10).",
        ),
    ] = None,
    log_level: LogLevelOption = None,
    log_file: LogFileOption = None,
) -> None:
    """Run an agent: enroll, heartbeat, pull executions and run them.

    SIGTERM drains: no new work is taken and running executions finish before the agent exits.
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings(AgentSettings, ctx)
    from octopus.agent.agent import run_agent  # imported late: management commands skip it

    code = run_agent(settings)
    if code:
        raise typer.Exit(code)


@app.command("list")
def list_agents(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 100,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the server's JSON.")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """List the agents a server knows, with status, labels and load."""
    with Client.from_options(server, token) as client:
        data = client.get("/api/v1/agents", limit=limit, offset=offset)
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    page = Page[AgentRead].model_validate(data)
    render.stdout().print(render.agents_table(page.items, page.total))


@app.command()
def show(
    name: NameArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the server's JSON.")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Show one agent."""
    with Client.from_options(server, token) as client:
        data = client.get(f"/api/v1/agents/{name}")
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    render.stdout().print(render.agent_detail(AgentRead.model_validate(data)))


def _change(name: str, verb: str, server: str | None, token: str | None) -> None:
    with Client.from_options(server, token) as client:
        agent = AgentRead.model_validate(client.post(f"/api/v1/agents/{name}/{verb}"))
    typer.echo(f"agent {agent.name}: {agent.status.value}")


@app.command()
def drain(name: NameArg, server: ServerOption = None, token: TokenOption = None) -> None:
    """Stop giving an agent new work; its running executions finish."""
    _change(name, "drain", server, token)


@app.command()
def resume(name: NameArg, server: ServerOption = None, token: TokenOption = None) -> None:
    """Give a drained agent work again."""
    _change(name, "resume", server, token)


@app.command()
def revoke(name: NameArg, server: ServerOption = None, token: TokenOption = None) -> None:
    """Revoke an agent's token: it can no longer call the server and must enroll again."""
    _change(name, "revoke", server, token)
