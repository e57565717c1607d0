"""``octopus audit list`` and ``octopus join-token rotate`` against the real in-process app."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient

from octopus.cli import client as client_module
from octopus.cli.main import run
from octopus.config import ClientSettings
from tests.api.conftest import ADMIN_TOKEN, JOIN_TOKEN


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, client: TestClient) -> None:
    """Point the CLI's client at the test app (``--token`` still chooses the token)."""

    def from_options(
        cls: type[client_module.Client], server: str | None, token: str | None
    ) -> client_module.Client:
        settings = ClientSettings(server_url="http://testserver", admin_token=token or ADMIN_TOKEN)
        return cls(settings, transport=httpx.MockTransport(forward))

    def forward(request: httpx.Request) -> httpx.Response:
        answer = client.request(
            request.method, str(request.url), content=request.content, headers=request.headers
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    monkeypatch.setattr(client_module.Client, "from_options", classmethod(from_options))


@pytest.mark.usefixtures("cli")
def test_audit_list_prints_the_entries(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.post("/api/v1/tasks", json={"plugin": "example", "action": "hello"})
    assert run(["audit", "list"]) == 0
    out = capsys.readouterr().out
    assert "task.created" in out and "task:1" in out and "admin" in out
    assert run(["audit", "list", "--action", "task.created", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 1


@pytest.mark.usefixtures("cli")
def test_audit_list_refuses_a_bad_filter_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", "list", "--actor", "root"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "actor" in err and len(err.splitlines()) == 1
    assert run(["audit", "list", "--action", "task.exploded"]) == 2
    assert run(["audit", "list", "--token", "wrong-token-0123456789"]) == 1


@pytest.mark.usefixtures("cli")
def test_join_token_rotate_prints_the_new_token_once(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["join-token", "rotate", "--expires-in", "600"]) == 0
    out = capsys.readouterr().out
    token = out.splitlines()[-1].strip()
    assert "expires: 20" in out
    enroll = {"name": "a1", "labels": {}}
    new = client.post("/api/v1/agents/enroll", json=enroll, headers=_bearer(token))
    assert new.status_code == 201
    old = client.post("/api/v1/agents/enroll", json=enroll, headers=_bearer(JOIN_TOKEN))
    assert old.status_code == 401


@pytest.mark.usefixtures("cli")
def test_join_token_rotate_refuses_a_bad_expiry(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["join-token", "rotate", "--expires-in", "0"]) == 2
    assert "--expires-in" in capsys.readouterr().err


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
