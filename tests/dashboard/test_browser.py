"""The dashboard in a real headless Chromium against real ``octopus server`` and agent processes.

Screenshots of the key steps go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Page,
    Route,
    expect,
    sync_playwright,
)

from octopus.server.dashboard.live import POLL_SECONDS
from tests.dashboard.browser import launch, log_in, screenshot
from tests.e2e.harness import AgentProcess, ApiClient, ServerProcess, wait_for

pytestmark = pytest.mark.e2e

XSS_PLUGIN = Path(__file__).resolve().parent / "plugins" / "xssprobe.py"
MARKUP_LABEL = "<img src=x onerror=window.__xss=1>"
LIVE_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, list[AgentProcess]]]:
    """One server with the XSS probe plugin and two agents, one labelled with markup."""
    root = tmp_path_factory.mktemp("dashboard-fleet")
    server = ServerProcess(root / "server")
    shutil.copyfile(XSS_PLUGIN, server.plugins_dir / XSS_PLUGIN.name)
    agents = [
        AgentProcess(
            server, "dash-a1", root / "agents", concurrency=2, labels={"note": MARKUP_LABEL}
        ),
        AgentProcess(server, "dash-a2", root / "agents", concurrency=2, labels={"zone": "eu"}),
    ]
    try:
        server.start()
        for agent in agents:
            agent.start()
        yield server, agents
    finally:
        for agent in agents:
            agent.stop(timeout=5)
            agent.cleanup()
        server.stop()
        server.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def dialogs(context: BrowserContext) -> list[str]:
    """Every dialog any page opens (an alert from injected markup would land here)."""
    seen: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    context.on("dialog", on_dialog)
    return seen


@pytest.fixture
def page(context: BrowserContext, fleet: tuple[ServerProcess, list[AgentProcess]]) -> Page:
    """A logged-in page."""
    server, _ = fleet
    page = context.new_page()
    log_in(page, server.url)
    expect(page.locator("h1")).to_have_text("Overview")
    return page


def api(fleet: tuple[ServerProcess, list[AgentProcess]]) -> ApiClient:
    return fleet[0].api()


def mark_page(page: Page) -> None:
    """Set a flag that a reload would lose, to prove updates arrive without one."""
    page.evaluate("window.__noReload = true")


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__noReload === true"))


def test_login_refuses_a_wrong_token_then_accepts_the_right_one(
    context: BrowserContext, fleet: tuple[ServerProcess, list[AgentProcess]]
) -> None:
    server, _ = fleet
    page = context.new_page()
    page.goto(f"{server.url}/tasks")
    assert page.url.startswith(f"{server.url}/login")
    log_in(page, server.url, token="wrong-token")
    expect(page.locator("#login-error")).to_contain_text("not the admin token")
    screenshot(page, "01-login-refused")
    log_in(page, server.url)
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("#live-status")).to_have_text("live", timeout=LIVE_TIMEOUT_MS)
    screenshot(page, "02-overview")


def test_a_task_created_in_the_form_succeeds_live(page: Page, fleet: tuple) -> None:
    server, _ = fleet
    page.goto(f"{server.url}/tasks/new")
    page.select_option("select[name=plugin]", "example")
    page.wait_for_load_state()
    page.select_option("select[name=action]", "sleep")
    page.wait_for_load_state()
    expect(page.locator("legend code")).to_have_text("example.sleep")
    page.fill("input[name='param.seconds']", "oops")
    page.fill("input[name=timeout_seconds]", "-5")
    page.click("#create-task")
    expect(page.locator("[data-error-for=timeout_seconds]")).to_contain_text("greater than 0")
    screenshot(page, "03-form-errors")
    page.fill("input[name='param.seconds']", "1.5")
    page.fill("input[name=timeout_seconds]", "60")
    page.fill("input[name=name]", "browser sleep")
    page.click("#create-task")
    expect(page.locator("h1")).to_contain_text("browser sleep")
    mark_page(page)
    expect(page.locator("#task-status")).to_have_text("succeeded", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator(".rollup").first).to_have_text("1/1 succeeded")
    assert not_reloaded(page)
    screenshot(page, "04-task-succeeded-live")


def test_cancel_a_running_task(page: Page, fleet: tuple) -> None:
    server, _ = fleet
    with api(fleet) as client:
        task = client.create_task("example.sleep", 60, labels={"zone": "eu"})
    page.goto(f"{server.url}/tasks/{task['id']}")
    mark_page(page)
    expect(page.locator(".execution-status").first).to_have_text("running", timeout=LIVE_TIMEOUT_MS)
    assert not_reloaded(page)
    page.click("button[data-action=cancel]")
    expect(page.locator("#task-status")).to_have_text("cancelled")
    expect(page.locator(".execution-status").first).to_have_text(
        "cancelled", timeout=LIVE_TIMEOUT_MS
    )
    screenshot(page, "05-task-cancelled")


def test_a_change_before_the_live_stream_opens_still_shows(page: Page, fleet: tuple) -> None:
    """The execution is cancelled after the page was rendered but before its event stream
    opened (held back here), so no change event can tell the page: it catches up on open."""
    server, _ = fleet
    with api(fleet) as client:
        task = client.create_task("example.sleep", 60, labels={"zone": "eu"})
        wait_for(lambda: _execution_status(client, task["id"]) == "running", timeout=20)

        def cancel_then_open(route: Route) -> None:
            client.cancel_task(task["id"])
            wait_for(lambda: _execution_status(client, task["id"]) == "cancelled", timeout=20)
            # The server's change loop sees the change (and tells no one) before the page listens.
            time.sleep(3 * POLL_SECONDS)
            route.continue_()

        page.route("**/events", cancel_then_open)
        page.goto(f"{server.url}/tasks/{task['id']}")
        mark_page(page)
        expect(page.locator(".execution-status").first).to_have_text(
            "cancelled", timeout=LIVE_TIMEOUT_MS
        )
    assert not_reloaded(page)


def _execution_status(client: ApiClient, task_id: int) -> str | None:
    executions = [e for run in client.get_task(task_id)["runs"] for e in run["executions"]]
    return executions[0]["status"] if executions else None


def test_follow_a_running_executions_log_live(page: Page, fleet: tuple) -> None:
    server, _ = fleet
    with api(fleet) as client:
        task = client.create_task("example.countdown", kwargs={"count": 8, "interval_seconds": 0.5})
        execution = wait_for(lambda: client.executions(task["id"]), message="an execution")[0]
    page.goto(f"{server.url}/executions/{execution['id']}")
    mark_page(page)
    log = page.locator("#log")
    expect(log).to_contain_text("7...", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#execution-status")).to_have_text("running")
    screenshot(page, "06-log-following-live")
    expect(log).to_contain_text("1...", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#execution-status")).to_have_text("succeeded", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#result")).to_contain_text("lift-off")
    assert not_reloaded(page)


def test_drain_and_resume_an_agent(page: Page, fleet: tuple) -> None:
    server, _ = fleet
    page.goto(f"{server.url}/agents")
    row = page.locator("tr[data-agent=dash-a2]")
    row.locator("button.agent-toggle").click()
    expect(row.locator(".agent-status")).to_have_text("draining", timeout=LIVE_TIMEOUT_MS)
    screenshot(page, "07-agent-draining")
    with api(fleet) as client:
        assert client.ok("GET", "/api/v1/agents/dash-a2")["status"] == "draining"
    row.locator("button.agent-toggle").click()
    expect(row.locator(".agent-status")).to_have_text("online", timeout=LIVE_TIMEOUT_MS)


def test_markup_from_plugins_and_agents_is_shown_as_text(
    page: Page, fleet: tuple, dialogs: list[str]
) -> None:
    server, _ = fleet
    with api(fleet) as client:
        probe = client.create_task("xssprobe.probe", name="<script>window.__xss='name'</script>")
        failing = client.create_task("xssprobe.explode")
        client.wait_task(probe["id"])
        client.wait_task(failing["id"])
        [done] = client.executions(probe["id"])
        [failed] = client.executions(failing["id"])
    for path in [
        f"/tasks/{probe['id']}",
        f"/executions/{done['id']}",
        f"/executions/{failed['id']}",
        "/agents",
        "/tasks",
        "/",
    ]:
        page.goto(server.url + path)
        page.wait_for_load_state()
        expect(page.locator("h1")).to_be_visible()
        assert page.evaluate("typeof window.__xss") == "undefined", path
    page.goto(f"{server.url}/executions/{done['id']}")
    expect(page.locator("#result")).to_contain_text("<script>window.__xss")
    expect(page.locator("#log")).to_contain_text("<img src=x onerror=")
    screenshot(page, "08-xss-result-as-text")
    page.goto(f"{server.url}/agents")
    expect(page.locator("tr[data-agent=dash-a1] .agent-labels")).to_contain_text(MARKUP_LABEL)
    screenshot(page, "09-xss-label-as-text")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []


def test_a_state_change_without_the_csrf_token_is_refused(page: Page, fleet: tuple) -> None:
    server, _ = fleet
    page.goto(f"{server.url}/agents")
    status = page.evaluate(
        """async () => (await fetch('/agents/dash-a1/drain', {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'x=1'})).status"""
    )
    assert status == 403
    response = page.request.post(f"{server.url}/agents/dash-a1/drain", form={"csrf": "forged"})
    assert response.status == 403
    with api(fleet) as client:
        assert client.ok("GET", "/api/v1/agents/dash-a1")["status"] == "online"
