"""In-process dashboard tests: login, sessions, CSRF, rate limit, redirects, forms, escaping."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from octopus.server.dashboard.session import COOKIE_NAME
from tests.api.conftest import ADMIN_TOKEN, AgentClient
from tests.dashboard.conftest import Browser

WRONG = "not-the-admin-token"


def test_a_visitor_without_a_session_is_sent_to_login(web: Browser) -> None:
    for path, target in [("/", "/login"), ("/tasks/5", "/login?next=%2Ftasks%2F5")]:
        response = web.client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == target
    page = web.client.get("/login")
    assert page.status_code == 200 and 'name="token"' in page.text


def test_a_logged_in_visitor_sees_the_pages(admin: Browser) -> None:
    for path in ["/", "/agents", "/tasks", "/tasks/new", "/plugins"]:
        response = admin.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert response.headers["x-frame-options"] == "DENY"


def test_login_sets_a_strict_httponly_cookie(web: Browser) -> None:
    response = web.client.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert f"{COOKIE_NAME}=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie


def test_login_over_https_sets_a_secure_cookie(client: TestClient) -> None:
    client.headers.pop("Authorization")
    client.base_url = client.base_url.copy_with(scheme="https")
    response = client.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert response.status_code == 303 and "secure" in response.headers["set-cookie"].lower()


def test_a_wrong_token_is_refused_without_a_cookie(web: Browser) -> None:
    response = web.client.post("/login", data={"token": WRONG}, follow_redirects=False)
    assert response.status_code == 401 and "not the admin token" in response.text
    assert "set-cookie" not in response.headers
    assert web.client.get("/", follow_redirects=False).status_code == 303


def test_failed_logins_are_rate_limited(web: Browser) -> None:
    for _ in range(5):
        assert web.client.post("/login", data={"token": WRONG}).status_code == 401
    blocked = web.client.post("/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "set-cookie" not in blocked.headers


def test_login_goes_on_only_to_local_pages(web: Browser) -> None:
    for target, expected in [
        ("/tasks?status=failed", "/tasks?status=failed"),
        ("//evil.example", "/"),
    ]:
        response = web.client.post(
            "/login", data={"token": ADMIN_TOKEN, "next": target}, follow_redirects=False
        )
        assert response.headers["location"] == expected


def test_a_tampered_cookie_is_no_session(admin: Browser) -> None:
    cookie = admin.client.cookies[COOKIE_NAME]
    admin.client.cookies.clear()
    admin.client.cookies.set(COOKIE_NAME, cookie[:-1] + ("0" if cookie[-1] != "0" else "1"))
    assert admin.client.get("/", follow_redirects=False).status_code == 303


def test_logout_needs_the_csrf_token_and_ends_the_session(admin: Browser) -> None:
    cookie = admin.client.cookies[COOKIE_NAME]
    refused = admin.client.post("/logout", data={}, follow_redirects=False)
    assert refused.status_code == 403
    assert admin.client.get("/").status_code == 200
    assert admin.post("/logout").status_code == 303
    admin.client.cookies.clear()
    admin.client.cookies.set(COOKIE_NAME, cookie)  # the old cookie, replayed
    assert admin.client.get("/", follow_redirects=False).status_code == 303


def test_drain_without_the_csrf_token_is_refused(admin: Browser, enroll: AgentClient) -> None:
    enroll("a1")
    refused = admin.client.post("/agents/a1/drain", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert 'action="/agents/a1/drain"' in admin.client.get("/agents").text
    header_ok = admin.client.post(
        "/agents/a1/drain", headers={"X-CSRF-Token": admin.csrf}, follow_redirects=False
    )
    assert header_ok.status_code == 303
    assert 'action="/agents/a1/resume"' in admin.client.get("/agents").text
    assert admin.post("/agents/a1/resume").status_code == 303
    assert 'action="/agents/a1/drain"' in admin.client.get("/agents").text


def test_the_form_creates_a_task_through_the_api_checks(admin: Browser) -> None:
    response = admin.post(
        "/tasks/new",
        {"plugin": "example", "action": "add", "param.a": "1", "param.b": "2.5", "name": "sum"},
    )
    assert response.status_code == 303
    task_id = int(response.headers["location"].rsplit("/", 1)[1])
    page = admin.client.get(f"/tasks/{task_id}").text
    assert f"#{task_id} sum" in page and "&#34;a&#34;: 1" in page.replace("&quot;", "&#34;")


def test_the_form_shows_validation_errors_in_place(admin: Browser) -> None:
    response = admin.post(
        "/tasks/new",
        {"plugin": "example", "action": "add", "param.a": "1", "timeout_seconds": "-1"},
    )
    assert response.status_code == 422
    assert re.search(r'data-error-for="timeout_seconds">[^<]*greater than 0', response.text)
    missing = admin.post("/tasks/new", {"plugin": "example", "action": "add", "param.a": "1"})
    assert missing.status_code == 422 and 'data-error-for="params"' in missing.text
    problem = re.search(r'data-error-for="params">([^<]*)<', missing.text)
    assert problem is not None and "&#39;b&#39;" in problem.group(1), missing.text
    labels = admin.post("/tasks/new", {"plugin": "example", "action": "hello", "labels": "x"})
    assert labels.status_code == 422 and 'data-error-for="labels"' in labels.text


def test_the_form_clones_a_task(admin: Browser) -> None:
    created = admin.post(
        "/tasks/new",
        {"plugin": "example", "action": "hello", "param.name": "Ada", "labels": "zone=eu"},
    )
    task_id = created.headers["location"].rsplit("/", 1)[1]
    form = admin.client.get(f"/tasks/new?clone={task_id}").text
    assert 'name="param.name" value="Ada"' in form and 'value="zone=eu"' in form


def test_user_and_agent_data_are_escaped(admin: Browser, enroll: AgentClient) -> None:
    enroll("a1", zone="<img src=x onerror=alert(1)>")
    name = "<script>window.__xss=1</script>"
    created = admin.post("/tasks/new", {"plugin": "example", "action": "hello", "name": name})
    task_id = created.headers["location"].rsplit("/", 1)[1]
    for path in ["/agents", f"/tasks/{task_id}", "/tasks"]:
        text = admin.client.get(path).text
        assert "<script>window" not in text and "<img src=x" not in text, path
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in admin.client.get("/tasks").text
    assert "zone=&lt;img src=x onerror=alert(1)&gt;" in admin.client.get("/agents").text


def test_task_buttons_cancel_and_delete(admin: Browser) -> None:
    created = admin.post("/tasks/new", {"plugin": "example", "action": "hello"})
    task_id = created.headers["location"].rsplit("/", 1)[1]
    refused = admin.post(f"/tasks/{task_id}/delete")
    assert "only+a+finished+task" in refused.headers["location"].replace("%20", "+")
    assert admin.post(f"/tasks/{task_id}/cancel").headers["location"] == f"/tasks/{task_id}"
    assert admin.post(f"/tasks/{task_id}/delete").headers["location"] == "/tasks"
    assert admin.client.get(f"/tasks/{task_id}").status_code == 404


def test_task_list_filters_search_and_pages(admin: Browser) -> None:
    for number in range(55):
        admin.post("/tasks/new", {"plugin": "example", "action": "hello", "name": f"job-{number}"})
    first = admin.client.get("/tasks").text
    assert "55 tasks match" in first and "job-54" in first and "job-4<" not in first
    older = re.search(r'href="(/tasks\?before=\d+)"', first)
    assert older is not None
    assert "job-4<" in admin.client.get(older.group(1).replace("&amp;", "&")).text
    found = admin.client.get("/tasks?q=JOB-5").text
    assert "6 tasks match" in found  # job-5 and job-50 ... job-54
    assert "0 tasks match" in admin.client.get("/tasks?plugin=http").text
    assert "0 tasks match" in admin.client.get("/tasks?agent=nobody").text


def test_dashboard_routes_stay_out_of_the_openapi_document(admin: Browser) -> None:
    paths = admin.client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith(("/api/", "/healthz", "/metrics"))]


def test_task_buttons_pause_resume_and_run_an_interval_task(admin: Browser) -> None:
    created = admin.post(
        "/tasks/new",
        {"plugin": "example", "action": "hello", "type": "interval", "interval_seconds": "3600"},
    )
    assert created.status_code == 303, created.text
    task_id = created.headers["location"].rsplit("/", 1)[1]
    page = admin.client.get(f"/tasks/{task_id}").text
    assert 'data-action="pause"' in page and 'data-action="resume"' not in page
    assert admin.post(f"/tasks/{task_id}/pause").headers["location"] == f"/tasks/{task_id}"
    page = admin.client.get(f"/tasks/{task_id}").text
    assert 'data-action="resume"' in page and 'data-action="pause"' not in page
    runs_before = page.count("run now")
    assert admin.post(f"/tasks/{task_id}/run").headers["location"] == f"/tasks/{task_id}"
    assert admin.client.get(f"/tasks/{task_id}").text.count("run now") == runs_before + 1
    assert admin.post(f"/tasks/{task_id}/resume").status_code == 303
    assert 'data-action="pause"' in admin.client.get(f"/tasks/{task_id}").text


def test_pausing_an_adhoc_task_is_refused_in_place(admin: Browser) -> None:
    created = admin.post("/tasks/new", {"plugin": "example", "action": "hello"})
    task_id = created.headers["location"].rsplit("/", 1)[1]
    refused = admin.post(f"/tasks/{task_id}/pause")
    assert refused.status_code == 303 and "error=" in refused.headers["location"]
    assert 'data-action="pause"' not in admin.client.get(f"/tasks/{task_id}").text
