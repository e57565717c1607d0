"""Logging in with the admin token, and out again."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from octopus.core.audit import ANONYMOUS, DASHBOARD, DASHBOARD_SUBJECT, AuditAction, AuditNote
from octopus.server.clock import utcnow
from octopus.server.dashboard.deps import (
    CurrentSession,
    DashboardDep,
    Form,
    State,
    read_form,
    safe_next,
)
from octopus.server.dashboard.render import page, redirect
from octopus.server.dashboard.session import COOKIE_NAME, SESSION_SECONDS
from octopus.server.secrets import same_token
from octopus.server.state import ServerState

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_page(request: Request, dashboard: DashboardDep, next: str | None = None) -> Response:
    """The login form; a visitor already logged in goes straight on."""
    if dashboard.sessions.check(request.cookies.get(COOKIE_NAME)) is not None:
        return redirect(safe_next(next))
    return page(request, "login.html", None, next=safe_next(next), error=None)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _audit(state: ServerState, actor: str, action: AuditAction, client: str) -> None:
    """Record a login or logout (never the token typed) with the client's address."""
    note = AuditNote(
        actor=actor, action=action, subject=DASHBOARD_SUBJECT, detail={"client": client}
    )
    state.store.record_audit(note, now=utcnow())


@router.post("/login")
async def login(request: Request, state: State, dashboard: DashboardDep) -> Response:
    """Check the admin token; on success set the session cookie and go on."""
    fields = await read_form(request)
    target = safe_next(fields.get("next"))
    client, limiter = _client(request), dashboard.limiter
    if limiter.blocked(client):
        wait = limiter.retry_after(client)
        refused: HTMLResponse = page(
            request,
            "login.html",
            None,
            status_code=429,
            next=target,
            error=f"Too many failed logins. Try again in {wait} s.",
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    if not same_token(fields.get("token", "").strip(), state.tokens.admin):
        limiter.failed(client)
        await run_in_threadpool(_audit, state, ANONYMOUS, AuditAction.LOGIN_FAILED, client)
        error = "That is not the admin token."
        return page(request, "login.html", None, status_code=401, next=target, error=error)
    _, cookie = dashboard.sessions.issue()
    await run_in_threadpool(_audit, state, DASHBOARD, AuditAction.LOGIN, client)
    response = redirect(target)
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request, form: Form, state: State, dashboard: DashboardDep) -> Response:
    """End the session and go back to the login page."""
    dashboard.sessions.end(form.session)
    _audit(state, DASHBOARD, AuditAction.LOGOUT, _client(request))
    response = redirect("/login")
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


@router.get("/logout")
def logout_page(session: CurrentSession) -> Response:
    """Logging out takes a POST with the CSRF token; a plain visit goes back home."""
    return redirect("/")
