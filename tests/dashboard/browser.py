"""A headless Chromium (the Debian package, never downloaded) driven by Playwright's sync API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright

from tests.e2e.harness import ADMIN_TOKEN, REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright: Playwright) -> Browser:
    """Chromium from /usr/bin/chromium; a missing browser fails the test (never a skip)."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.fail("Chromium is required at /usr/bin/chromium (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/dashboard/ and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, base_url: str, token: str = ADMIN_TOKEN) -> None:
    """Log in through the login form."""
    page.goto(f"{base_url}/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
