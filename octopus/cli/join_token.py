"""``octopus join-token``: rotate the join token that new agents enroll with."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from octopus.cli.client import Client, ServerOption, TokenOption
from octopus.schemas.audit import MAX_EXPIRY_SECONDS, JoinTokenRead

app = typer.Typer(help="Manage the join token that new agents enroll with.", no_args_is_help=True)


@app.command()
def rotate(
    expires_in: Annotated[
        int | None,
        typer.Option(
            "--expires-in",
            min=1,
            max=MAX_EXPIRY_SECONDS,
            metavar="SECONDS",
            help="The new token stops working after this many seconds (default: never).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the server's JSON.")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Replace the join token: the old one stops working at once, agents already enrolled are
    not affected. The new token is printed once; the server keeps only its hash (and saves it
    in its data dir's join.token)."""
    body: dict[str, Any] = {} if expires_in is None else {"expires_in_seconds": expires_in}
    with Client.from_options(server, token) as client:
        data = client.post("/api/v1/join-token/rotate", json=body)
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    rotated = JoinTokenRead.model_validate(data)
    expiry = rotated.expires_at.isoformat(timespec="seconds") if rotated.expires_at else "never"
    typer.echo(f"New join token (expires: {expiry}):\n  {rotated.join_token}")
