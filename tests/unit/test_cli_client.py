"""The admin API client: error lines from ErrorBody, tokens, and transport failures."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from octopus.cli.client import ApiError, Client, describe_error, resolve_token
from octopus.config import ClientSettings


def _client(handler: httpx.MockTransport, token: str | None = "t" * 20) -> Client:
    settings = ClientSettings(server_url="http://octopus.test", admin_token=token)
    return Client(settings, transport=handler)


def test_describe_error_names_fields() -> None:
    body = {
        "error": "validation_error",
        "message": "invalid task",
        "details": [{"field": "target", "message": "required when ownership is specific"}],
    }
    response = httpx.Response(422, json=body)
    assert describe_error(response) == (
        "invalid task (target: required when ownership is specific)"
    )


def test_describe_error_without_details_or_json() -> None:
    assert describe_error(httpx.Response(404, json={"message": "task 9 not found"})) == (
        "task 9 not found"
    )
    assert describe_error(httpx.Response(502, text="Bad gateway\nmore")) == "HTTP 502: Bad gateway"


def test_requests_carry_the_token_and_decode_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [], "total": 0, "limit": 5, "offset": 0})

    with _client(httpx.MockTransport(handler)) as client:
        assert client.get("/api/v1/tasks", limit=5, status=None)["limit"] == 5
    assert seen[0].headers["Authorization"] == "Bearer " + "t" * 20
    assert seen[0].url.params.get("limit") == "5" and "status" not in seen[0].url.params


def test_error_status_raises_api_error_with_one_line() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "unauthorized", "message": "bad token"})

    with _client(httpx.MockTransport(handler)) as client, pytest.raises(ApiError) as info:
        client.get("/api/v1/tasks")
    assert info.value.message == "bad token"
    assert info.value.status_code == 401


def test_transport_failure_raises_api_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with _client(httpx.MockTransport(handler)) as client, pytest.raises(ApiError, match="reach"):
        client.get("/healthz")


def test_token_falls_back_to_the_local_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OCTOPUS_DATA_DIR", raising=False)
    assert resolve_token(None) is None
    (tmp_path / "octopus-data").mkdir()
    (tmp_path / "octopus-data" / "admin.token").write_text("from-file-token\n")
    assert resolve_token(None) == "from-file-token"
    assert resolve_token("given") == "given"
