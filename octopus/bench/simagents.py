"""Simulated agents: light clients that enroll with the join token and heartbeat, nothing more."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime
from typing import Any

from octopus.bench.processes import BenchError
from octopus.bench.wire import LightConnection

SIM_LABELS = {"bench": "sim"}
"""Simulated agents never match bench tasks, which select ``bench=worker``."""


def _facts() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "ip": "127.0.0.1",
        "pid": os.getpid(),
        "started_at": datetime.now(UTC).isoformat(),
        "concurrency": 1,
        "free_slots": 1,
        "version": "bench",
    }


class SimAgent:
    """One simulated agent with its own keep-alive connection and token."""

    def __init__(self, base_url: str, name: str) -> None:
        self.name = name
        self.token = ""
        self._connection = LightConnection(base_url)
        self._heartbeat = {"facts": _facts(), "labels": SIM_LABELS}

    async def enroll(self, join_token: str) -> None:
        """Enroll with the join token and keep the agent token; BenchError if refused."""
        body = {"name": self.name, "labels": SIM_LABELS}
        status, answer = await self._connection.post("/api/v1/agents/enroll", body, join_token)
        if status != 201:
            raise BenchError(f"enrolling {self.name} failed: HTTP {status}: {answer}")
        self.token = str(answer["token"])

    async def heartbeat(self) -> int:
        """Send one heartbeat and return the status code."""
        path = f"/api/v1/agents/{self.name}/heartbeat"
        status, _ = await self._connection.post(path, self._heartbeat, self.token)
        return status

    async def close(self) -> None:
        """Close the connection."""
        await self._connection.close()


async def enroll_many(
    base_url: str, join_token: str, names: list[str], *, in_flight: int = 16, heartbeat: bool
) -> list[SimAgent]:
    """Enroll agents named ``names``, ``in_flight`` at a time; each heartbeats once if asked.

    Connections are closed once an agent is done, so thousands of agents need few sockets.
    """
    agents = [SimAgent(base_url, name) for name in names]
    queue = iter(agents)

    async def lane() -> None:
        for agent in queue:
            await agent.enroll(join_token)
            if heartbeat and (status := await agent.heartbeat()) != 200:
                raise BenchError(f"heartbeat of {agent.name} failed: HTTP {status}")
            await agent.close()

    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return agents
