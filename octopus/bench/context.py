"""What every scenario works with: the options, the target server, its admin API, local agents."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from octopus.bench.api import BENCH_LABELS, AdminApi
from octopus.bench.processes import AgentProcess, ServerProcess, clean_env


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchOptions:
    """Counts and durations of one bench run (``--quick`` picks the smaller defaults)."""

    latency_tasks: int = 200
    throughput_tasks: int = 5000
    create_concurrency: int = 16
    heartbeat_seconds: float = 10.0
    heartbeat_clients: int = 64
    schedule_tasks: int = 1000
    schedule_seconds: float = 5.0
    rss_agents: int = 10_000
    list_executions: int = 1_000_000
    list_calls: int = 200
    worker_concurrency: int = 2

    @classmethod
    def quick(cls) -> BenchOptions:
        """Smaller counts that finish within 90 s on a 2-core machine."""
        return cls(
            latency_tasks=100,
            throughput_tasks=1000,
            heartbeat_seconds=4.0,
            heartbeat_clients=32,
            schedule_tasks=100,
            schedule_seconds=3.0,
            rss_agents=2000,
            list_executions=100_000,
            list_calls=100,
        )


@dataclass(slots=True, kw_only=True)
class BenchContext:
    """The server under test and the processes the bench started for it."""

    options: BenchOptions
    url: str
    admin_token: str
    join_token: str
    workdir: Path
    api: AdminApi
    server: ServerProcess | None = None
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    agents: dict[str, AgentProcess] = field(default_factory=dict)

    def worker_agent(self) -> AgentProcess:
        """The one real bench agent (``--concurrency`` 2 by default), started on first use."""
        name = f"bench-{self.run_id}"
        if name not in self.agents:
            labels = ",".join(f"{k}={v}" for k, v in BENCH_LABELS.items())
            agent = AgentProcess(
                self.workdir,
                name=name,
                server_url=self.url,
                env=clean_env(OCTOPUS_JOIN_TOKEN=self.join_token),
                concurrency=self.options.worker_concurrency,
                labels=labels,
            )
            self.agents[name] = agent
            agent.start(self.admin_token)
        return self.agents[name]

    def stop_all(self) -> None:
        """Stop the agents, then the server, whatever state they are in."""
        for agent in self.agents.values():
            agent.stop()
        if self.server is not None:
            self.server.stop()
