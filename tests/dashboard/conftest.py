"""Fixtures for the dashboard tests: the in-process app with a logged-in browser-like client.

The real-browser tests (``test_browser_*``) bring their own server and agent processes, and
a headless Chromium from the Debian package; a missing browser fails them, never skips.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.api.conftest import ADMIN_TOKEN, client, enroll, settings, state

__all__ = ["client", "enroll", "settings", "state"]

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browser:
    """A TestClient that keeps cookies, logs in through the form and finds CSRF tokens."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def login(self, token: str = ADMIN_TOKEN) -> None:
        response = self.client.post("/login", data={"token": token}, follow_redirects=False)
        assert response.status_code == 303, response.text
        self.csrf = self.token_of("/")

    def token_of(self, path: str) -> str:
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        found = CSRF.search(page.text)
        assert found is not None, "no CSRF token on the page"
        return found.group(1)

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> Response:
        """POST a form with the session's CSRF token, without following the redirect."""
        return self.client.post(
            path, data={"csrf": self.csrf, **(data or {})}, follow_redirects=False, **kwargs
        )


@pytest.fixture
def web(client: TestClient) -> Browser:
    """An anonymous browser-like client of the in-process app (no bearer token)."""
    client.headers.pop("Authorization")
    return Browser(client)


@pytest.fixture
def admin(web: Browser) -> Browser:
    """The same client, logged in."""
    web.login()
    return web
