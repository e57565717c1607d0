"""The admin calls the bench makes (aiohttp): create, read, count, probe and verify tasks.

aiohttp, as the agent uses: the latency scenario times from just before its POST, and httpx
spent about 1 ms more of the bench's CPU per request on this machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from octopus.bench.plugin import PLUGIN_NAME
from octopus.bench.processes import BenchError

BENCH_LABELS = {"bench": "worker"}
"""Labels of the real bench agents; bench tasks select them, so simulated agents get none."""

BULK_PATH = "/api/v1/tasks/bulk"
MINIMAL_ANSWER = {"Prefer": "return=minimal"}
BULK_SIZE = 1000


def bench_task(action: str, **fields: Any) -> dict[str, Any]:
    """The body of a bench task running ``octobench.<action>`` on the bench agents."""
    return {"plugin": PLUGIN_NAME, "action": action, "labels": BENCH_LABELS, **fields}


@dataclass(frozen=True, slots=True)
class Answer:
    """A server's answer: its status and its JSON body (None when it has none)."""

    status: int
    body: Any

    @property
    def error(self) -> str:
        """The status and the server's message, for a BenchError."""
        message = self.body.get("message") if isinstance(self.body, dict) else self.body
        return f"HTTP {self.status}: {message}" if message else f"HTTP {self.status}"


@dataclass(slots=True)
class Verdict:
    """Whether every checked task ended exactly once with ``succeeded``."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    results: dict[int, Any] = field(default_factory=dict)
    last_finished_at: float = 0.0

    @property
    def correct(self) -> bool:
        """True when no checked task had a problem."""
        return not self.problems

    def judge(self, task: dict[str, Any]) -> None:
        """Add one task: its status, its executions, its result and when it finished."""
        self.checked += 1
        executions = [e for run in task["runs"] for e in run["executions"]]
        succeeded = [e for e in executions if e["status"] == "succeeded"]
        if task["status"] != "succeeded" or len(succeeded) != 1 or len(executions) != 1:
            statuses = ",".join(e["status"] for e in executions) or "none"
            self.problems.append(f"task {task['id']}: {task['status']} (executions: {statuses})")
            return
        self.results[int(task["id"])] = succeeded[0]["result"]
        finished = datetime.fromisoformat(succeeded[0]["finished_at"]).timestamp()
        self.last_finished_at = max(self.last_finished_at, finished)


class AdminApi:
    """An admin client for one server."""

    def __init__(self, base_url: str, token: str) -> None:
        """A client of the server at ``base_url``; call it from the loop that will use it."""
        self._base = base_url.rstrip("/")
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(limit=64),
            timeout=aiohttp.ClientTimeout(total=60),
            cookie_jar=aiohttp.DummyCookieJar(),
            json_serialize=lambda value: orjson.dumps(value).decode(),
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str | int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One request; the answer whatever its status (a connection error raises
        ``aiohttp.ClientError``)."""
        async with self._http.request(
            method, self._base + path, json=json, params=params, headers=headers
        ) as response:
            content = await response.read()
        try:
            body = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            body = content[:200].decode("utf-8", "replace")
        return Answer(response.status, body)

    async def create(self, body: dict[str, Any]) -> int:
        """Create one task and return its id; BenchError naming the server's answer otherwise."""
        answer = await self.call("POST", "/api/v1/tasks", json=body)
        if answer.status != 201:
            raise BenchError(f"creating a task failed: {answer.error}")
        return int(answer.body["id"])

    async def create_many(self, bodies: Sequence[dict[str, Any]], in_flight: int) -> list[int]:
        """Create tasks with single POSTs, ``in_flight`` at a time; ids in creation order."""
        ids: list[int] = [0] * len(bodies)
        queue = iter(enumerate(bodies))

        async def lane() -> None:
            for index, body in queue:
                ids[index] = await self.create(body)

        await asyncio.gather(*(lane() for _ in range(in_flight)))
        return ids

    async def try_create(self, body: dict[str, Any]) -> tuple[int | None, str]:
        """Create one task; its id, or None and the server's reason when refused."""
        answer = await self.call("POST", "/api/v1/tasks", json=body)
        if answer.status == 201:
            return int(answer.body["id"]), ""
        return None, answer.error

    async def cancel(self, task_id: int) -> None:
        """Cancel a task (a task already finished is left as it is)."""
        await self.call("POST", f"/api/v1/tasks/{task_id}/cancel")

    async def task(self, task_id: int) -> dict[str, Any]:
        """One task with its runs and executions."""
        answer = await self.call("GET", f"/api/v1/tasks/{task_id}")
        if answer.status != 200:
            raise BenchError(f"reading task {task_id} failed: {answer.error}")
        return dict(answer.body)

    async def runs(self, task_id: int, page: int = 500) -> list[dict[str, Any]]:
        """Every run of a task with its executions, a page at a time."""
        found: list[dict[str, Any]] = []
        while True:
            answer = await self.call(
                "GET", f"/api/v1/tasks/{task_id}/runs", params={"limit": page, "offset": len(found)}
            )
            if answer.status != 200:
                raise BenchError(f"reading the runs of task {task_id} failed: {answer.error}")
            items = answer.body["items"]
            found += items
            if len(items) < page:
                return found

    async def count(self, status: str) -> int:
        """How many tasks have ``status``."""
        answer = await self.call("GET", "/api/v1/tasks", params={"status": status, "limit": 1})
        if answer.status != 200:
            raise BenchError(f"counting tasks failed: {answer.error}")
        return int(answer.body["total"])

    async def has_plugin(self, name: str) -> bool:
        """Whether the server offers plugin ``name``."""
        return (await self.call("GET", f"/api/v1/plugins/{name}")).status == 200

    async def bulk_available(self) -> bool:
        """Whether ``POST /api/v1/tasks/bulk`` exists (an empty list must not be a 404/405)."""
        answer = await self.call("POST", BULK_PATH, json={"tasks": []})
        return answer.status not in (404, 405)

    async def create_bulk(self, bodies: Sequence[dict[str, Any]]) -> list[int]:
        """Create tasks in atomic batches of up to 1,000 and return their ids in order (asking
        for ids only, as a producer of bulk work would; a server that ignores the preference
        answers with the tasks)."""
        ids: list[int] = []
        for start in range(0, len(bodies), BULK_SIZE):
            chunk = list(bodies[start : start + BULK_SIZE])
            answer = await self.call(
                "POST", BULK_PATH, json={"tasks": chunk}, headers=MINIMAL_ANSWER
            )
            if not 200 <= answer.status < 300:
                raise BenchError(f"bulk create failed: {answer.error}")
            data = answer.body
            if isinstance(data, dict) and "ids" in data:
                ids += [int(task_id) for task_id in data["ids"]]
                continue
            items = data if isinstance(data, list) else data.get("items") or data.get("tasks")
            ids += [int(item["id"]) for item in items]
        return ids

    async def verify(self, task_ids: Sequence[int], concurrency: int = 16) -> Verdict:
        """Check that each task succeeded with exactly one execution, which succeeded."""
        verdict = Verdict()
        gate = asyncio.Semaphore(concurrency)

        async def check(task_id: int) -> None:
            async with gate:
                task = await self.task(task_id)
            verdict.judge(task)

        await asyncio.gather(*(check(task_id) for task_id in task_ids))
        return verdict
