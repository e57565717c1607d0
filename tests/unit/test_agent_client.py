"""The agent's HTTP client and the proxy settings of its environment, over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from octopus.agent.client import AgentClient, ServerUnavailable
from octopus.schemas.agents import ClaimRequest

T = TypeVar("T")

SERVER = "http://octopus.invalid:8000"
"""A server name that never resolves: only a proxy can answer for it."""


async def _via_proxy(seen: list[str], call: Callable[[AgentClient], Awaitable[T]]) -> T:
    """``call`` on a client for SERVER whose environment names a loopback proxy; the proxy
    records each URL it is asked for and answers a plugin's source or an empty claim."""

    async def answer(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        if request.path.endswith("/claim"):
            return web.json_response({"executions": [], "cancel": []})
        return web.Response(body=b"source", headers={"X-Octopus-Plugin-Version": "3"})

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    proxy = TestServer(app, host="127.0.0.1")
    await proxy.start_server()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("HTTP_PROXY", str(proxy.make_url("")))
            client = AgentClient(SERVER, token="t" * 20)
        try:
            return await call(client)
        finally:
            await client.aclose()
    finally:
        await proxy.close()


async def _download(client: AgentClient) -> bytes:
    download = await client.download_plugin("calc")
    assert download.version == 3
    return download.data


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_requests_go_through_the_proxy_the_environment_names() -> None:
    seen: list[str] = []
    assert asyncio.run(_via_proxy(seen, _download)) == b"source"
    assert seen == [f"{SERVER}/api/v1/plugins/calc/source"]


def test_claims_go_through_the_proxy_too() -> None:
    seen: list[str] = []
    claim = ClaimRequest(slots=1, wait_seconds=0)
    response = asyncio.run(_via_proxy(seen, lambda client: client.claim("a1", claim)))
    assert response.executions == []
    assert seen == [f"{SERVER}/api/v1/agents/a1/claim"]


def test_no_proxy_sends_requests_to_the_server_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "octopus.invalid")
    seen: list[str] = []
    with pytest.raises(ServerUnavailable, match="plugins/calc/source"):
        asyncio.run(_via_proxy(seen, _download))
    assert seen == []
