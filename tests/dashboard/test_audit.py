"""The dashboard's logins, logouts and buttons leave audit entries, never the token typed."""

from __future__ import annotations

from typing import Any

from octopus.core.audit import AuditFilter
from octopus.server.state import ServerState
from tests.api.conftest import ADMIN_TOKEN, AgentClient
from tests.dashboard.conftest import Browser


def _audit(state: ServerState) -> list[tuple[str, str, str]]:
    entries, _ = state.store.list_audit(AuditFilter())
    return [(e.actor, e.action.value, e.subject) for e in entries]


def _details(state: ServerState) -> list[dict[str, Any]]:
    return [e.detail for e in state.store.list_audit(AuditFilter())[0]]


def test_a_login_and_a_logout_are_audited(web: Browser, state: ServerState) -> None:
    web.login()
    assert web.post("/logout").status_code == 303
    assert _audit(state) == [
        ("dashboard", "dashboard.logout", "dashboard"),
        ("dashboard", "dashboard.login", "dashboard"),
    ]
    assert _details(state)[1] == {"client": "testclient"}


def test_a_failed_login_is_audited_as_anonymous_without_the_token(
    web: Browser, state: ServerState
) -> None:
    guess = "not-the-admin-token-0123456789"
    refused = web.client.post("/login", data={"token": guess}, follow_redirects=False)
    assert refused.status_code == 401
    assert _audit(state) == [("anonymous", "dashboard.login_failed", "dashboard")]
    assert guess not in str(_details(state)) and ADMIN_TOKEN not in str(_details(state))


def test_dashboard_buttons_are_audited_as_the_dashboard(
    admin: Browser, state: ServerState, enroll: AgentClient
) -> None:
    enroll("a1")
    assert admin.post("/agents/a1/drain").status_code == 303
    created = admin.client.post(
        "/api/v1/tasks",
        json={"plugin": "example", "action": "hello", "type": "interval", "interval_seconds": 60},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()
    assert admin.post(f"/tasks/{created['id']}/pause").status_code == 303
    assert _audit(state)[:2] == [
        ("dashboard", "task.paused", f"task:{created['id']}"),
        ("admin", "task.created", f"task:{created['id']}"),
    ]
    assert ("dashboard", "agent.drained", "agent:a1") in _audit(state)
