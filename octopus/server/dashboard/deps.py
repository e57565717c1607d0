"""What every dashboard view needs: the logged-in session, a CSRF-checked form, the state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request

from octopus.server.dashboard.live import LiveHub
from octopus.server.dashboard.session import COOKIE_NAME, Session, Sessions, same_csrf
from octopus.server.limiter import FailureLimiter
from octopus.server.state import ServerState, get_state

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


class LoginRequired(Exception):
    """No valid session: the visitor is sent to the login page."""


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token."""


@dataclass(slots=True)
class Dashboard:
    """The dashboard's per-process parts: sessions, the login limiter and the live hub."""

    sessions: Sessions
    limiter: FailureLimiter
    live: LiveHub


async def get_dashboard(request: Request) -> Dashboard:
    """The Dashboard of the app serving ``request``."""
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


async def current_session(request: Request) -> Session:
    """The visitor's session; LoginRequired without a valid one."""
    session = (await get_dashboard(request)).sessions.check(request.cookies.get(COOKIE_NAME))
    if session is None:
        raise LoginRequired
    return session


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form body (the last value of a repeated field wins)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class Submitted:
    """A form posted by a logged-in visitor with the right CSRF token."""

    session: Session
    fields: dict[str, str]


async def checked_form(
    request: Request, session: Annotated[Session, Depends(current_session)]
) -> Submitted:
    """The posted form, once its CSRF token (field or header) matches the session's."""
    fields = await read_form(request)
    token = fields.pop(CSRF_FIELD, None) or request.headers.get(CSRF_HEADER)
    if not same_csrf(token, session):
        raise CsrfRefused
    return Submitted(session=session, fields=fields)


def login_url(request: Request) -> str:
    """The login page, returning afterwards to the page asked for."""
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if wanted == "/" else f"/login?next={quote(wanted, safe='')}"


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (another host) becomes ``/``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


CurrentSession = Annotated[Session, Depends(current_session)]
Form = Annotated[Submitted, Depends(checked_form)]
State = Annotated[ServerState, Depends(get_state)]
DashboardDep = Annotated[Dashboard, Depends(get_dashboard)]
