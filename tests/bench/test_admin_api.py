"""The bench's admin client against a scripted server over loopback: answers and refusals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from octopus.bench.api import AdminApi
from octopus.bench.processes import BenchError


async def _against(answer: web.Response, call: str, *args: Any) -> tuple[Any, list[str]]:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs} {request.headers['Authorization']}")
        return answer

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    api = AdminApi(str(server.make_url("")), "admin-token")
    try:
        return await getattr(api, call)(*args), seen
    finally:
        await api.aclose()
        await server.close()


def test_a_created_task_answers_its_id() -> None:
    answer = web.json_response({"id": 42}, status=201)
    task_id, seen = asyncio.run(_against(answer, "create", {"plugin": "p", "action": "a"}))
    assert task_id == 42
    assert seen == ["POST /api/v1/tasks Bearer admin-token"]


def test_a_refused_create_names_the_servers_message() -> None:
    answer = web.json_response({"error": "invalid", "message": "plugin: unknown"}, status=422)
    with pytest.raises(BenchError, match="creating a task failed: HTTP 422: plugin: unknown"):
        asyncio.run(_against(answer, "create", {"plugin": "p", "action": "a"}))


def test_an_answer_that_is_not_json_is_named_by_its_status_and_text() -> None:
    answer = web.Response(status=502, text="Bad gateway")
    with pytest.raises(BenchError, match="reading task 7 failed: HTTP 502: Bad gateway"):
        asyncio.run(_against(answer, "task", 7))


def test_counts_send_their_filter_as_query_parameters() -> None:
    answer = web.json_response({"items": [], "total": 3, "limit": 1, "offset": 0})
    total, seen = asyncio.run(_against(answer, "count", "failed"))
    assert total == 3
    assert seen == ["GET /api/v1/tasks?status=failed&limit=1 Bearer admin-token"]
