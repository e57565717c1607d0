"""A small synchronous client for the admin API, and the options every remote command shares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from octopus.config import ClientSettings
from octopus.errors import OctopusError

DEFAULT_TIMEOUT_SECONDS = 30.0
LOCAL_TOKEN_FILE = "admin.token"

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="OCTOPUS_SERVER_URL",
        show_envvar=True,
        help="Server URL (default: http://localhost:8000).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="OCTOPUS_ADMIN_TOKEN",
        show_envvar=True,
        help=(
            "Admin bearer token. When not given, read from ./octopus-data/admin.token "
            "(or $OCTOPUS_DATA_DIR/admin.token) if that file exists."
        ),
    ),
]


class ApiError(OctopusError):
    """The server answered with an error body, or could not be reached."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def local_token_file() -> Path:
    """Where a server started in this directory saves its generated admin token."""
    return Path(os.environ.get("OCTOPUS_DATA_DIR", "./octopus-data")) / LOCAL_TOKEN_FILE


def resolve_token(given: str | None) -> str | None:
    """The token given, else the one a local server wrote to its data dir, else None."""
    if given:
        return given
    path = local_token_file()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def describe_error(response: httpx.Response) -> str:
    """One line from an ErrorBody: ``<message> (<field>: <problem>; ...)``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "message" not in body:
        text = response.text.strip().splitlines()
        return f"HTTP {response.status_code}: {text[0] if text else response.reason_phrase}"
    message = str(body["message"])
    problems = [
        f"{detail.get('field')}: {detail.get('message')}"
        if detail.get("field")
        else str(detail.get("message"))
        for detail in body.get("details") or []
        if isinstance(detail, dict)
    ]
    problems = [p for p in problems if p not in message]
    return f"{message} ({'; '.join(problems)})" if problems else message


class Client:
    """The admin API over httpx; every failure becomes an ApiError with one clear line."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = settings.server_url.rstrip("/")
        headers = {"Accept": "application/json"}
        token = resolve_token(settings.admin_token)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_options(cls, server: str | None, token: str | None) -> Client:
        """Build a client from ``--server`` / ``--token`` over env, octopus.toml and defaults."""
        settings: ClientSettings = ClientSettings.load(server_url=server, admin_token=token)
        return cls(settings)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON body; raise ApiError on any failure."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, params=clean, json=json, headers=headers)
        except httpx.TimeoutException:
            raise ApiError(f"server at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach server at {self.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(describe_error(response), status_code=response.status_code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"server at {self.base_url} sent a body that is not JSON") from None

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query parameters (None values are left out)."""
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, *, headers: dict[str, str] | None = None) -> Any:
        """POST ``json`` to ``path``."""
        return self.request("POST", path, json=json, headers=headers)
