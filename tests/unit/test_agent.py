"""The agent against a fake server (scripted answers, served over loopback HTTP by aiohttp in the
test's own event loop) with real worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from octopus.agent.agent import CLAIM_LEAD_SECONDS, Agent
from octopus.plugins.loader import sha256_of
from octopus.plugins.signing import PluginSigner
from tests.unit.waiting import async_wait_for

JOIN = "join-token-0123456789"
TOKEN = "agent-token-0123456789"
PLUGIN = b"import time\n\ndef add(a, b):\n    return a + b\n\ndef nap(s):\n    time.sleep(s)\n"
SHA = sha256_of(PLUGIN)
SIGNER = PluginSigner(Ed25519PrivateKey.generate())


class FakeServer:
    """Speaks the agent protocol; tests script its answers."""

    def __init__(self) -> None:
        self.work: list[dict[str, Any]] = []
        self.cancel: list[int] = []
        self.reports: dict[int, dict[str, Any]] = {}
        self.heartbeats: list[dict[str, Any]] = []
        self.batches: list[list[int]] = []
        self.claims: list[int] = []
        self.leads: list[float] = []
        self.report_failures = 0
        self.report_delay = 0.0
        self.batch_status = 200
        self.singles: list[int] = []
        self.report_status = 200
        self.revoked = False
        self.wake = asyncio.Event()

    def queue(
        self, execution_id: int, action: str, *args: Any, timeout: float = 30, start_in: float = 0
    ) -> None:
        self.work.append(
            {
                "id": execution_id, "task_id": 10 + execution_id, "run_id": 1, "attempt": 1,
                "plugin": "calc", "plugin_sha256": SHA, "action": action, "args": list(args),
                "kwargs": {}, "timeout_seconds": timeout,
                "lease_expires_at": (datetime.now(UTC) + timedelta(seconds=60)).isoformat(),
                "start_in_seconds": start_in,
            }
        )  # fmt: skip
        self.wake.set()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Serve on a free loopback port; yields the server's URL."""
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            await server.close()

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix("/api/v1")
        bearer = request.headers.get("Authorization", "")
        if path == "/agents/enroll":
            if bearer != f"Bearer {JOIN}":
                return web.json_response(
                    status=401, data={"error": "unauthorized", "message": "bad join"}
                )
            body = json.loads(await request.read())
            answer = {"name": body["name"], "token": TOKEN, "heartbeat_interval": 0.2,
                      "client_timeout": 5, "plugin_public_key": SIGNER.public_key}  # fmt: skip
            return web.json_response(status=201, data=answer)
        if bearer != f"Bearer {TOKEN}" or self.revoked:
            return web.json_response(
                status=401, data={"error": "unauthorized", "message": "unknown token"}
            )
        return await self._agent_call(path, request)

    async def _agent_call(self, path: str, request: web.Request) -> web.Response:
        content = await request.read()
        body = json.loads(content) if content else None
        if path.endswith("/heartbeat"):
            self.heartbeats.append(body)
            cancel, self.cancel = self.cancel, []
            ack = {"status": "online", "cancel": cancel, "plugins": {"calc": SHA},
                   "lease_seconds": 60}  # fmt: skip
            return web.json_response(status=200, data=ack)
        if path.endswith("/claim"):
            return await self._claim(body)
        if path.endswith("/reports"):
            await asyncio.sleep(self.report_delay)
            return self._report_many(body["reports"])
        if path.startswith("/executions/"):
            return self._report(int(path.split("/")[2]), body)
        if path == "/plugins/calc/source":
            signed = {"X-Octopus-Sha256": SHA, "X-Octopus-Plugin-Version": "1",
                      "X-Octopus-Signature": SIGNER.sign("calc", 1, SHA)}  # fmt: skip
            return web.Response(body=PLUGIN, headers=signed)
        return web.json_response(status=404, data={"error": "not_found", "message": path})

    async def _claim(self, body: dict[str, Any]) -> web.Response:
        self.claims.append(body["slots"])
        self.leads.append(body["lead_seconds"])
        if not self.work and not self.cancel:
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), body["wait_seconds"])
            except TimeoutError:
                pass
        executions, self.work = self.work[: body["slots"]], self.work[body["slots"] :]
        cancel, self.cancel = self.cancel, []
        return web.json_response(status=200, data={"executions": executions, "cancel": cancel})

    def _report_many(self, reports: list[dict[str, Any]]) -> web.Response:
        self.batches.append([report["execution_id"] for report in reports])
        if self.batch_status != 200:
            return web.json_response(
                status=self.batch_status, data={"error": "invalid", "message": "no"}
            )
        if self.report_failures > 0:
            self.report_failures -= 1
            return web.json_response(
                status=503, data={"error": "unavailable", "message": "db down"}
            )
        results = []
        for report in reports:
            execution_id = report.pop("execution_id")
            if self.report_status == 409:
                results.append({"id": execution_id, "refused": "fenced", "reason": "lease lost"})
            else:
                self.reports[execution_id] = report
                results.append({"id": execution_id, "status": report["status"]})
        return web.json_response(status=200, data={"results": results})

    def _report(self, execution_id: int, body: dict[str, Any]) -> web.Response:
        self.singles.append(execution_id)
        if self.report_failures > 0:
            self.report_failures -= 1
            return web.json_response(
                status=503, data={"error": "unavailable", "message": "db down"}
            )
        if self.report_status == 409:
            return web.json_response(status=409, data={"error": "fenced", "message": "lease lost"})
        self.reports[execution_id] = body
        return web.json_response(status=200, data={"id": execution_id, "status": body["status"]})


def make_agent(server_url: str, state_dir: Path, **overrides: Any) -> Agent:
    options: dict[str, Any] = {
        "server_url": server_url,
        "name": "agent-1",
        "join_token": JOIN,
        "labels": {"zone": "a"},
        "concurrency": 2,
        "state_dir": state_dir,
        "heartbeat_interval": 0.2,
        "claim_wait_seconds": 1.0,
        "max_backoff_seconds": 0.2,
        "handle_signals": False,
    }
    options.update(overrides)
    return Agent(**options)


Scenario = Callable[[FakeServer, Agent], Awaitable[None]]


def run_scenario(
    tmp_path: Path, scenario: Scenario, server: FakeServer | None = None, **overrides: Any
) -> int:
    server = server or FakeServer()

    async def main() -> int:
        async with server.serving() as url:
            agent = make_agent(url, tmp_path / "state", **overrides)
            running = asyncio.create_task(agent.run())
            try:
                await scenario(server, agent)
            finally:
                agent.stop()
            return await asyncio.wait_for(running, 20)

    return asyncio.run(main())


def test_enrolls_runs_reports_and_drains(tmp_path: Path) -> None:
    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(1, "add", 2, 3)
        await async_wait_for(lambda: 1 in server.reports, 15, "the report")
        report = server.reports[1]
        assert (report["status"], report["result"], report["error"]) == ("succeeded", 5, None)
        await async_wait_for(
            lambda: server.heartbeats[-1]["facts"]["plugin_versions"], 5, "versions reported"
        )
        facts = server.heartbeats[-1]["facts"]
        assert facts["concurrency"] == 2 and facts["plugin_versions"] == {"calc": SHA}
        assert facts["pid"] > 0 and facts["version"] and facts["started_at"]

    assert run_scenario(tmp_path, scenario) == 0
    assert (tmp_path / "state" / "token").read_text(encoding="utf-8").strip() == TOKEN
    pinned = (tmp_path / "state" / "plugin-signing.pub").read_text(encoding="utf-8").strip()
    assert pinned == SIGNER.public_key


def test_drain_finishes_running_executions_first(tmp_path: Path) -> None:
    server = FakeServer()

    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(7, "nap", 0.5)
        await async_wait_for(lambda: not server.work and agent.free_slots == 1, 10, "a start")

    assert run_scenario(tmp_path, scenario, server) == 0
    assert server.reports[7]["status"] == "succeeded"
    assert any(heartbeat["draining"] for heartbeat in server.heartbeats)


def test_cancel_from_the_server_stops_the_execution(tmp_path: Path) -> None:
    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(3, "nap", 60)
        await async_wait_for(lambda: agent.free_slots == 1, 10, "the execution to start")
        server.cancel.append(3)
        server.wake.set()
        await async_wait_for(lambda: 3 in server.reports, 10, "the cancelled report")
        assert server.reports[3]["status"] == "cancelled"

    assert run_scenario(tmp_path, scenario) == 0


def test_work_handed_ahead_of_its_time_starts_at_its_time(tmp_path: Path) -> None:
    async def scenario(server: FakeServer, agent: Agent) -> None:
        queued = datetime.now(UTC)
        server.queue(5, "add", 1, 2, start_in=0.4)
        await async_wait_for(lambda: 5 in server.reports, 15, "the report")
        report = server.reports[5]
        assert (report["status"], report["result"]) == ("succeeded", 3)
        started = datetime.fromisoformat(report["started_at"])
        assert started >= queued + timedelta(seconds=0.4)
        assert set(server.leads) == {CLAIM_LEAD_SECONDS}

    assert run_scenario(tmp_path, scenario) == 0


def test_a_cancel_ends_work_waiting_for_its_time_without_running_it(tmp_path: Path) -> None:
    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(6, "nap", 60, start_in=1.0)
        await async_wait_for(lambda: agent._runner.held == 1, 5, "the execution held")
        server.cancel.append(6)
        server.wake.set()
        await async_wait_for(lambda: 6 in server.reports, 10, "the cancelled report")
        assert server.reports[6]["status"] == "cancelled"

    assert run_scenario(tmp_path, scenario) == 0


def test_timeout_is_reported_as_timed_out(tmp_path: Path) -> None:
    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(4, "nap", 60, timeout=0.5)
        await async_wait_for(lambda: 4 in server.reports, 10, "the report")
        assert server.reports[4]["status"] == "timed_out"

    assert run_scenario(tmp_path, scenario) == 0


def test_reports_are_retried_until_the_server_accepts_them(tmp_path: Path) -> None:
    server = FakeServer()
    server.report_failures = 3

    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(5, "add", 1, 1)
        await async_wait_for(lambda: 5 in server.reports, 15, "the report after retries")

    assert run_scenario(tmp_path, scenario, server) == 0
    assert server.report_failures == 0


def test_a_fenced_report_is_dropped_not_retried(tmp_path: Path) -> None:
    server = FakeServer()
    server.report_status = 409

    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(6, "add", 1, 1)
        await async_wait_for(lambda: agent.free_slots == 2 and not server.work, 10, "the run")

    assert run_scenario(tmp_path, scenario, server) == 0
    assert server.reports == {}


def test_a_revoked_token_stops_the_agent_with_exit_code_2(tmp_path: Path) -> None:
    server = FakeServer()
    server.revoked = True

    async def main() -> int:
        async with server.serving() as url:
            agent = make_agent(url, tmp_path / "state")
            agent._state.save_token(TOKEN)  # enrolled earlier
            agent._state.save_plugin_key(SIGNER.public_key)
            return await asyncio.wait_for(agent.run(), 10)

    assert asyncio.run(main()) == 2


def test_a_bad_join_token_stops_the_agent_with_exit_code_2(tmp_path: Path) -> None:
    async def main() -> int:
        async with FakeServer().serving() as url:
            agent = make_agent(url, tmp_path / "state", join_token="wrong-token-0123456789")
            return await asyncio.wait_for(agent.run(), 10)

    assert asyncio.run(main()) == 2
    assert not (tmp_path / "state" / "token").exists()


def test_the_saved_token_is_reused_without_enrolling(tmp_path: Path) -> None:
    async def scenario(server: FakeServer, agent: Agent) -> None:
        await async_wait_for(lambda: server.heartbeats, 5, "a heartbeat")

    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "token").write_text(TOKEN, encoding="utf-8")
    server = FakeServer()

    async def main() -> int:
        async with server.serving() as url:
            agent = make_agent(url, tmp_path / "state", join_token=None)
            running = asyncio.create_task(agent.run())
            await scenario(server, agent)
            agent.stop()
            return await asyncio.wait_for(running, 10)

    assert asyncio.run(main()) == 0


def test_quick_executions_are_claimed_ahead_of_free_workers(tmp_path: Path) -> None:
    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(1, "add", 1, 1)
        await async_wait_for(lambda: 1 in server.reports, 15, "the first report")
        assert server.claims[0] == 2  # nothing is known yet: one per worker
        await async_wait_for(lambda: server.claims[-1] > 2, 5, "a claim ahead")
        for execution_id in range(2, 42):
            server.queue(execution_id, "add", execution_id, 0)
        await async_wait_for(lambda: len(server.reports) == 41, 20, "every report")
        assert all(server.reports[n]["result"] == n for n in range(2, 42))

    assert run_scenario(tmp_path, scenario) == 0


def test_slow_executions_are_not_claimed_ahead(tmp_path: Path) -> None:
    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(1, "nap", 0.6)
        await async_wait_for(lambda: 1 in server.reports, 15, "the report")
        claims = len(server.claims)
        await async_wait_for(lambda: len(server.claims) > claims, 5, "the next claim")
        assert max(server.claims) == 2

    assert run_scenario(tmp_path, scenario) == 0


def test_prefetch_zero_claims_only_for_free_workers(tmp_path: Path) -> None:
    async def scenario(server: FakeServer, agent: Agent) -> None:
        for execution_id in range(1, 6):
            server.queue(execution_id, "add", 1, 1)
        await async_wait_for(lambda: len(server.reports) == 5, 15, "every report")
        assert max(server.claims) == 2

    assert run_scenario(tmp_path, scenario, prefetch=0) == 0


def test_a_cancel_ends_a_claimed_ahead_execution_without_waiting_for_a_worker(
    tmp_path: Path,
) -> None:
    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(1, "add", 1, 1)
        await async_wait_for(lambda: 1 in server.reports, 15, "the first report")
        await async_wait_for(lambda: server.claims[-1] > 1, 5, "a claim ahead")
        server.queue(2, "nap", 60)
        server.queue(3, "nap", 60)
        # 3 is held while it waits for the only worker
        await async_wait_for(lambda: agent._executor.running == (2, 3), 5, "both held")
        server.cancel.append(3)
        server.wake.set()
        await async_wait_for(lambda: 3 in server.reports, 3, "the waiting one cancelled")
        assert server.reports[3]["status"] == "cancelled"
        assert 2 not in server.reports
        server.cancel.append(2)
        server.wake.set()
        await async_wait_for(lambda: 2 in server.reports, 10, "the running one cancelled")

    assert run_scenario(tmp_path, scenario, concurrency=1) == 0


def test_reports_that_finish_together_travel_in_one_request(tmp_path: Path) -> None:
    server = FakeServer()
    server.report_delay = 0.3

    async def scenario(server: FakeServer, agent: Agent) -> None:
        for execution_id in range(1, 11):
            server.queue(execution_id, "add", execution_id, 1)
        await async_wait_for(lambda: len(server.reports) == 10, 15, "every report")

    assert run_scenario(tmp_path, scenario, server) == 0
    assert len(server.batches) < 10 and max(map(len, server.batches)) > 1
    sent = [execution_id for batch in server.batches for execution_id in batch]
    assert sorted(sent) == list(range(1, 11))  # each report sent once
    assert server.singles == []


def test_a_refused_batch_is_sent_again_one_report_at_a_time(tmp_path: Path) -> None:
    server = FakeServer()
    server.batch_status = 422

    async def scenario(server: FakeServer, agent: Agent) -> None:
        server.queue(1, "add", 1, 1)
        server.queue(2, "add", 2, 2)
        await async_wait_for(lambda: len(server.reports) == 2, 15, "both reports")

    assert run_scenario(tmp_path, scenario, server) == 0
    assert sorted(server.singles) == [1, 2]
    assert (server.reports[1]["result"], server.reports[2]["result"]) == (2, 4)
