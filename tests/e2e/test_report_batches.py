"""The agent's report sender against a real server: batches, items refused within a batch,
and a batch refused as a whole sent again one report at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from octopus.agent.client import AgentClient
from octopus.agent.reports import ReportSender
from octopus.errors import AuthError
from octopus.schemas.agents import ClaimRequest, EnrollRequest, ExecutionReport, Heartbeat
from tests.e2e.agent_metrics import BATCH_REPORT_ROUTE, SINGLE_REPORT_ROUTE, request_counts
from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import JOIN_TOKEN, ApiClient, ServerProcess

pytestmark = pytest.mark.e2e

NAME = "sender"


def _report(result: Any, log: str = "") -> ExecutionReport:
    now = datetime.now(UTC)
    return ExecutionReport(status="succeeded", result=result, log=log, started_at=now,
                           finished_at=now)  # fmt: skip


async def _holding(server: ServerProcess, client: AgentClient, count: int) -> list[int]:
    """Enroll ``client``, bring it online, and claim ``count`` executions for it."""
    enrolled = await client.enroll(JOIN_TOKEN, EnrollRequest(name=NAME))
    client.token = enrolled.token
    await client.heartbeat(NAME, Heartbeat())
    with server.api() as api:
        for index in range(count):
            api.create_task("e2eplug.echo", index, ownership="specific", target=NAME)
    held: list[int] = []
    while len(held) < count:
        claim = await client.claim(NAME, ClaimRequest(slots=count, wait_seconds=5))
        held += [execution.id for execution in claim.executions]
    return sorted(held)


async def _with_client(
    server: ServerProcess, scenario: Callable[[AgentClient], Awaitable[list[int]]]
) -> list[int]:
    client = AgentClient(server.url)
    try:
        return await scenario(client)
    finally:
        await client.aclose()


def _sender(client: AgentClient, failures: list[AuthError]) -> ReportSender:
    return ReportSender(client, agent_name=NAME, on_auth_error=failures.append,
                        max_backoff_seconds=0.5)  # fmt: skip


def _execution(api: ApiClient, execution_id: int) -> dict[str, Any]:
    tasks = api.ok("GET", "/api/v1/tasks", params={"limit": 100})["items"]
    for task in tasks:
        for execution in api.executions(task["id"]):
            if execution["id"] == execution_id:
                return execution
    raise AssertionError(f"no execution {execution_id}")


def test_a_fenced_or_unknown_report_in_a_batch_is_dropped_and_the_others_recorded(
    server_factory: ServerFactory,
) -> None:
    server = server_factory.start()
    failures: list[AuthError] = []

    async def main(client: AgentClient) -> list[int]:
        held = await _holding(server, client, 3)
        first, *others = held
        await client.report(first, _report("first"))  # so the batched one is fenced
        sender = _sender(client, failures)
        sender.submit(first, _report("late"))
        for execution_id in others:
            sender.submit(execution_id, _report(execution_id))
        sender.submit(10**9, _report("nobody"))
        assert set(sender.pending) == {*held, 10**9}
        await asyncio.wait_for(sender.wait_delivered(), 10)
        assert sender.pending == ()
        return held

    held = asyncio.run(_with_client(server, main))
    with server.api() as api:
        first = _execution(api, held[0])
        assert (first["status"], first["result"]) == ("succeeded", "first")
        for execution_id in held[1:]:
            assert _execution(api, execution_id)["result"] == execution_id
        assert request_counts(api, BATCH_REPORT_ROUTE) == {"200": 1}  # one request for all
    assert failures == []


def test_a_refused_batch_is_sent_again_one_report_at_a_time(
    server_factory: ServerFactory,
) -> None:
    # The operator's body limit is smaller than the batch: the server refuses it with 413.
    server = server_factory.start(extra_env={"OCTOPUS_MAX_BODY_BYTES": "8192"})
    failures: list[AuthError] = []

    async def main(client: AgentClient) -> list[int]:
        held = await _holding(server, client, 4)
        *fitting, too_large = held
        sender = _sender(client, failures)
        for execution_id in fitting:
            sender.submit(execution_id, _report(execution_id, log="x" * 3000))
        sender.submit(too_large, _report("big", log="y" * 10_000))
        await asyncio.wait_for(sender.wait_delivered(), 10)
        assert sender.pending == ()
        return held

    held = asyncio.run(_with_client(server, main))
    with server.api() as api:
        for execution_id in held[:-1]:
            execution = _execution(api, execution_id)
            assert (execution["status"], execution["result"]) == ("succeeded", execution_id)
            assert api.log(execution_id)["log"] == "x" * 3000
        replaced = _execution(api, held[-1])
        assert replaced["status"] == "failed"
        assert replaced["error"]["type"] == "ReportRefused"
        # The body guard refuses before routing, so only accepted requests carry a route.
        assert request_counts(api, BATCH_REPORT_ROUTE) == {}
        assert request_counts(api, SINGLE_REPORT_ROUTE) == {"200": 4}
    assert failures == []
