"""The web dashboard: server-rendered pages at ``/``, served by the API server itself."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from octopus.server.dashboard.deps import CsrfRefused, Dashboard, LoginRequired, login_url
from octopus.server.dashboard.live import LiveHub
from octopus.server.dashboard.render import SECURITY_HEADERS, page, redirect
from octopus.server.dashboard.session import Sessions, load_or_create_key
from octopus.server.dashboard.views import (
    agents,
    events,
    executions,
    login,
    overview,
    plugins,
    task_actions,
    task_form,
    tasks,
)
from octopus.server.limiter import FailureLimiter
from octopus.server.state import ServerState

STATIC_DIR = Path(__file__).parent / "static"
# The form's fixed paths (/tasks/new) come before the task's id paths (/tasks/{task_id}).
_VIEWS = (login, overview, agents, plugins, task_form, task_actions, tasks, executions, events)


async def _to_login(request: Request, exc: Exception) -> Response:
    return redirect(login_url(request))


async def _csrf_refused(request: Request, exc: Exception) -> HTMLResponse:
    response = page(request, "refused.html", None, status_code=403)
    response.headers.update(SECURITY_HEADERS)
    return response


def mount_dashboard(app: FastAPI, state: ServerState) -> None:
    """Add the dashboard's pages, static files and live stream to ``app``."""
    key = load_or_create_key(state.settings.data_dir)
    app.state.dashboard = Dashboard(
        sessions=Sessions(key=key, admin_token=state.tokens.admin),
        limiter=FailureLimiter(),
        live=LiveHub(state.store),
    )
    for module in _VIEWS:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
