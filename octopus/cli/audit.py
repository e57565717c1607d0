"""``octopus audit``: read a server's audit log (who did what, newest first)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from octopus.cli import render
from octopus.cli.client import Client, ServerOption, TokenOption
from octopus.core.audit import AuditAction
from octopus.schemas.audit import AuditEntryRead
from octopus.schemas.common import Page

app = typer.Typer(help="Read the audit log of a server.", no_args_is_help=True)


def audit_table(entries: list[AuditEntryRead], total: int) -> Table:
    """One row per entry, newest first."""
    table = Table(
        title=f"{len(entries)} of {total} audit entries",
        title_justify="left",
        header_style="bold",
        show_edge=False,
    )
    for column in ("ID", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAIL"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(
            str(entry.id),
            render.when(entry.at),
            entry.actor,
            entry.action.value,
            entry.subject,
            render.short_json(entry.detail) if entry.detail else "-",
        )
    return table


@app.command("list")
def list_audit(
    action: Annotated[
        AuditAction | None, typer.Option(help="Only this action, e.g. task.cancelled.")
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor: admin, dashboard, agent:NAME…")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Only this subject: task:42, agent:web-1…")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only entries at or after this ISO 8601 time, with offset.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Page size.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the server's JSON.")] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """List audit entries, newest first."""
    with Client.from_options(server, token) as client:
        data = client.get(
            "/api/v1/audit",
            action=action.value if action else None,
            actor=actor,
            subject=subject,
            since=since,
            limit=limit,
            offset=offset,
        )
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    page = Page[AuditEntryRead].model_validate(data)
    render.stdout().print(audit_table(page.items, page.total))
