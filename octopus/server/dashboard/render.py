"""Rendering dashboard pages: one autoescaping Jinja environment and the security headers."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from octopus.server.dashboard.session import Session

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``12s ago``, ``5m ago``, ``in 3h``: a short distance from now."""
    if moment is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    past, seconds = seconds >= 0, abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{seconds // size}{unit}"
            break
    else:
        text = f"{seconds}s"
    return f"{text} ago" if past else f"in {text}"


def stamp(moment: datetime | None) -> str:
    """A UTC time as ``2030-01-01 12:00:05Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else ""


def pretty_json(value: Any) -> str:
    """A JSON value indented for reading (escaped later, like everything else)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


@cache
def environment() -> Environment:
    """The one template environment; autoescape is on for every template."""
    env = Environment(
        loader=PackageLoader("octopus.server.dashboard", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, stamp=stamp, pretty_json=pretty_json)
    return env


def page(
    request: Request,
    template: str,
    session: Session | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A rendered page with the CSP and other security headers."""
    html = (
        environment()
        .get_template(template)
        .render(request=request, session=session, path=request.url.path, **context)
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    """A 303 to ``url`` (a form POST becomes a GET), with the security headers."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
