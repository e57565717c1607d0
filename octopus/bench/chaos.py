"""The chaos run: real server and agents, killed and cut off at random, then the invariants.

It starts a server (SQLite in its work dir, or ``database_url``), ``agents`` agents that reach
it through a ``FaultProxy``, and creates ``tasks`` ``anyone`` tasks (single POSTs with an
``Idempotency-Key``, retried until accepted, so a server killed mid-request loses nothing
it answered). While they run, a seeded random schedule of faults hits them:

- ``kill_agent``: ``kill -9`` of one agent (its workers must die with it), restarted soon;
- ``kill_agent_after_claim``: the same, right after a burst of new work reached the agents;
- ``kill_agent_before_report``: the network is blackholed so finished actions cannot report,
  then the agent is killed: the action ran, its report never arrives;
- ``kill_server``: ``kill -9`` of the server, restarted on the same port and database;
- ``delay``, ``blackhole``, ``reset``, ``drop_responses``: a network fault for a moment;
- ``pg_terminate``: on PostgreSQL, ``pg_terminate_backend`` of the server's connections to
  the run's own database.

Then every fault is lifted and ``check`` proves the invariants of docs/guarantees.md.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import random
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import create_engine, text

from octopus.bench.plugin import PLUGIN_NAME, write_plugin
from octopus.bench.processes import AgentProcess, BenchError, Managed, ServerProcess, clean_env
from octopus.bench.proxy import Fault, FaultProxy
from octopus.core.enums import ExecutionStatus, RunStatus
from octopus.core.retry import LOST_REQUEUE_LIMIT
from octopus.core.states import EXECUTION_RELEASES, EXECUTION_TRANSITIONS, RUN_TERMINAL

CLIENT_TIMEOUT_SECONDS = 3.0
HEARTBEAT_INTERVAL_SECONDS = 0.5
LABELS = "chaos=yes"
NETWORK_FAULTS = (Fault.DELAY, Fault.BLACKHOLE, Fault.RESET, Fault.DROP_RESPONSES)
REQUEST_TIMEOUT_SECONDS = 5.0
RELEASE_ROUTE = "/api/v1/agents/{name}/release"
"""The hand-back route, as the server's request metrics name it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosOptions:
    """The size of a chaos run, its faults and its seed."""

    tasks: int = 10_000
    agents: int = 20
    concurrency: int = 2
    action_seconds: float = 0.05
    slow_every: int = 0
    """Every Nth task's action takes ``slow_seconds`` instead (0: none): a mix that moves the
    agents' claim-ahead, so they hand back work they claimed ahead."""
    slow_seconds: float = 1.0
    minutes: float | None = None
    """Soak: keep creating tasks and injecting faults for this long (``tasks`` per minute)."""
    fault_gap_seconds: tuple[float, float] = (0.5, 2.0)
    chaos_seconds: float = 0.0
    """Faults go on at least this long, even when every task was accepted sooner."""
    kill_server: bool = True
    database_url: str | None = None
    seed: int = field(default_factory=lambda: secrets.randbits(32))
    settle_seconds: float = 600.0
    """An upper bound: the check starts as soon as every accepted task finished."""


@dataclass(slots=True)
class ChaosReport:
    """What a chaos run did and whether every invariant held."""

    seed: int
    accepted: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    executions: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    extra_starts: int = 0
    """Action starts beyond one per task: each needs a lost lease to be allowed."""
    release_requests: int = 0
    """Hand-backs of executions claimed ahead the server answered (since it last started)."""
    violations: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    memory_mb: list[float] = field(default_factory=list)
    """Server RSS sampled every minute (a soak shows whether it stays flat)."""
    agent_memory_mb: list[float] = field(default_factory=list)
    """The mean RSS of an agent with its workers, sampled every minute."""
    create_p99_ms: list[float] = field(default_factory=list)
    """p99 of create latency per minute (a soak shows whether it stays stable)."""

    @property
    def correct(self) -> bool:
        """Whether every invariant held."""
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON object."""
        return {
            "seed": self.seed,
            "correct": self.correct,
            "accepted": self.accepted,
            "outcomes": dict(self.outcomes),
            "executions": dict(self.executions),
            "events": dict(self.events),
            "extra_starts": self.extra_starts,
            "release_requests": self.release_requests,
            "violations": self.violations[:50],
            "elapsed_seconds": round(self.elapsed_seconds, 1),
            "server_rss_mb": self.memory_mb,
            "agent_rss_mb": self.agent_memory_mb,
            "create_p99_ms": self.create_p99_ms,
        }


class ChaosRun:
    """One chaos run in ``workdir``; ``run()`` returns its report."""

    def __init__(
        self,
        options: ChaosOptions,
        workdir: Path,
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.options = options
        self.workdir = workdir
        self.progress = progress
        self.random = random.Random(options.seed)
        self.report = ChaosReport(seed=options.seed)
        self.admin = secrets.token_urlsafe(24)
        self.markers = workdir / "markers"
        self.accepted: dict[str, int] = {}
        self.seen: dict[int, list[str]] = {}
        self.stop_chaos = threading.Event()
        self.stop_watching = threading.Event()
        self.lock = threading.Lock()
        self.env = clean_env(
            OCTOPUS_ADMIN_TOKEN=self.admin,
            OCTOPUS_JOIN_TOKEN=secrets.token_urlsafe(24),
            OCTOPUS_CLIENT_TIMEOUT=str(CLIENT_TIMEOUT_SECONDS),
            OCTOPUS_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL_SECONDS),
        )
        plugins = workdir / "plugins"
        write_plugin(plugins)
        self.server = ServerProcess(
            workdir / "server", plugins_dir=plugins, env=self.env, database_url=options.database_url
        )
        self.proxy = FaultProxy(self.server.port)
        self.agents: list[AgentProcess] = []
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {self.admin}"}, timeout=REQUEST_TIMEOUT_SECONDS
        )

    # The run ----------------------------------------------------------------------------------

    def run(self) -> ChaosReport:
        """Start everything, create tasks under faults, settle, check; always clean up."""
        began = time.monotonic()
        self.markers.mkdir(parents=True, exist_ok=True)
        try:
            self.server.start()
            self.proxy.start()
            self.agents = [
                AgentProcess(
                    self.workdir / "agents",
                    name=f"chaos-{number}",
                    server_url=self.proxy.url,
                    env=self.env,
                    concurrency=self.options.concurrency,
                    labels=LABELS,
                )
                for number in range(1, self.options.agents + 1)
            ]
            for agent in self.agents:
                agent.spawn()
            self._wait_agents_online()
            self.progress(f"{len(self.agents)} agents online; seed {self.options.seed}")
            chaos = threading.Thread(target=self._chaos, name="chaos", daemon=True)
            watcher = threading.Thread(target=self._watch, name="watch", daemon=True)
            chaos.start()
            watcher.start()
            chaos_until = time.monotonic() + self.options.chaos_seconds
            self._create_all()
            time.sleep(max(chaos_until - time.monotonic(), 0))
            self.stop_chaos.set()
            chaos.join()
            self._lift_faults()
            self.progress(f"{len(self.accepted)} tasks accepted; settling")
            self._settle()
            self.stop_watching.set()
            watcher.join()
            self._check()
            self._check_orphans()
            self._count_releases()
        finally:
            self.stop_chaos.set()
            self.stop_watching.set()
            for agent in self.agents:
                agent.kill()
            self.server.kill()
            self.proxy.close()
            self.http.close()
        self.report.elapsed_seconds = time.monotonic() - began
        return self.report

    def _url(self, path: str) -> str:
        return f"{self.server.url}{path}"

    def _wait_agents_online(self) -> None:
        deadline = time.monotonic() + 60
        names = {agent.name for agent in self.agents}
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                page = self.http.get(self._url("/api/v1/agents"), params={"limit": 500}).json()
                online = {a["name"] for a in page["items"] if a["status"] == "online"}
                if names <= online:
                    return
            time.sleep(0.2)
        raise BenchError("the chaos agents did not all come online within 60 s")

    # Creating ---------------------------------------------------------------------------------

    def _create_all(self) -> None:
        """Create the tasks: as fast as the server takes them, or for a soak ``tasks`` per
        minute, evenly, to the end; sample memory and create latency every minute."""
        minutes = self.options.minutes
        total = int(self.options.tasks * minutes) if minutes else self.options.tasks
        began = time.monotonic()
        latencies: list[float] = []
        sampled = began
        with ThreadPoolExecutor(8) as pool:
            pending = [
                pool.submit(self._paced_create, number, began + number * 60 / self.options.tasks)
                if minutes
                else pool.submit(self._create, number)
                for number in range(total)
            ]
            for number, future in enumerate(pending, 1):
                latencies.append(future.result())
                if number % 500 == 0:
                    self.progress(f"{number}/{total} tasks accepted")
                if time.monotonic() - sampled >= 60:
                    self._sample(latencies)
                    latencies, sampled = [], time.monotonic()
        if latencies:
            self._sample(latencies)

    def _paced_create(self, number: int, at: float) -> float:
        time.sleep(max(at - time.monotonic(), 0))
        return self._create(number)

    def _sample(self, latencies: list[float]) -> None:
        self.report.create_p99_ms.append(_p99(latencies))
        self.report.memory_mb.append(self._server_rss())
        self.report.agent_memory_mb.append(self._agents_rss())

    def _create(self, number: int) -> float:
        """Create task ``number``, retrying with its key until the server answers 2xx."""
        key = f"chaos-{self.options.seed}-{number}"
        body = {
            "plugin": PLUGIN_NAME,
            "action": "record",
            "args": [str(self.markers / key), self._action_seconds(number)],
            "labels": dict([LABELS.split("=")]),
        }
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                response = self.http.post(
                    self._url("/api/v1/tasks"), json=body, headers={"Idempotency-Key": key}
                )
            except httpx.HTTPError:
                time.sleep(0.2)  # the server is being killed or restarted
                continue
            if response.status_code == 201:
                with self.lock:
                    self.accepted[key] = int(response.json()["id"])
                return (time.perf_counter() - began) * 1000
            if response.status_code < 500:
                raise BenchError(f"creating a chaos task was refused: {response.text}")
            time.sleep(0.2)
        raise BenchError(f"task {key} was not accepted within 120 s")

    # Faults -----------------------------------------------------------------------------------

    def _chaos(self) -> None:
        low, high = self.options.fault_gap_seconds
        events: list[Callable[[], None]] = [
            self._kill_agent,
            self._kill_agent_after_claim,
            self._kill_agent_before_report,
            *(functools.partial(self._network_fault, fault) for fault in NETWORK_FAULTS),
        ]
        if self.options.kill_server:
            events.append(self._kill_server)
        if self.options.database_url and self.options.database_url.startswith("postgresql"):
            events.append(self._pg_terminate)
        # Shuffled rounds rather than independent draws: every kind of fault happens in turn.
        cycle: list[Callable[[], None]] = []
        while not self.stop_chaos.wait(self.random.uniform(low, high)):
            if not cycle:
                cycle = self.random.sample(events, len(events))
            cycle.pop()()

    def _event(self, name: str) -> None:
        self.report.events[name] += 1

    def _a_running_agent(self) -> AgentProcess | None:
        running = [agent for agent in self.agents if agent.running()]
        return self.random.choice(running) if running else None

    def _kill_agent(self, name: str = "kill_agent") -> None:
        agent = self._a_running_agent()
        if agent is None:
            return
        _kill_alone(agent)  # its workers must notice on their own
        self._event(name)
        time.sleep(self.random.uniform(0.2, 1.5))
        agent.spawn()

    def _kill_agent_after_claim(self) -> None:
        # New work wakes the agents' long-polls at once: kill one while it has just claimed.
        with contextlib.suppress(httpx.HTTPError):
            self.http.get(self._url("/healthz"))
        self._kill_agent("kill_agent_after_claim")

    def _kill_agent_before_report(self) -> None:
        self.proxy.fault = Fault.BLACKHOLE
        time.sleep(self.options.action_seconds * 3 + 0.1)  # actions finish, reports are held
        self._kill_agent("kill_agent_before_report")
        self.proxy.fault = Fault.NONE

    def _network_fault(self, fault: Fault) -> None:
        self.proxy.fault = fault
        self._event(fault.value)
        time.sleep(self.random.uniform(0.3, 2.0))
        self.proxy.fault = Fault.NONE

    def _kill_server(self) -> None:
        if not self.server.running():
            return
        _kill_alone(self.server)
        self._event("kill_server")
        time.sleep(self.random.uniform(0.2, 1.0))
        self.server.start()

    def _pg_terminate(self) -> None:
        engine = create_engine(self.server.database_url)
        try:
            with engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
        finally:
            engine.dispose()
        self._event("pg_terminate")

    def _lift_faults(self) -> None:
        self.proxy.fault = Fault.NONE
        if not self.server.running():
            self.server.start()
        for agent in self.agents:
            if not agent.running():
                agent.spawn()

    # Watching and settling --------------------------------------------------------------------

    def _watch(self) -> None:
        """Sample a few tasks' executions now and then, to check statuses only move forward."""
        while not self.stop_watching.wait(0.5):
            with self.lock:
                ids = list(self.accepted.values())
            for task_id in self.random.sample(ids, min(5, len(ids))):
                with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                    for execution in self._executions(task_id):
                        history = self.seen.setdefault(execution["id"], [])
                        if not history or history[-1] != execution["status"]:
                            history.append(execution["status"])

    def _settle(self) -> None:
        """Wait until every accepted task has finished (bounded), the watcher still sampling."""
        deadline = time.monotonic() + self.options.settle_seconds
        expected = len(self.accepted)
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, KeyError):
                done = sum(self._count(status) for status in ("succeeded", "failed", "cancelled"))
                if done >= expected:
                    return
            time.sleep(0.5)
        self.report.violations.append(
            f"not every accepted task finished within {self.options.settle_seconds:g} s"
        )

    def _action_seconds(self, number: int) -> float:
        every = self.options.slow_every
        slow = every > 0 and number % every == every - 1
        return self.options.slow_seconds if slow else self.options.action_seconds

    def _count_releases(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            metrics = self.http.get(self._url("/metrics")).text
            self.report.release_requests = sum(
                int(float(line.rsplit(" ", 1)[1]))
                for line in metrics.splitlines()
                if line.startswith("octopus_http_request_duration_seconds_count{")
                and f'route="{RELEASE_ROUTE}"' in line
            )

    def _count(self, status: str) -> int:
        response = self.http.get(self._url("/api/v1/tasks"), params={"status": status, "limit": 1})
        return int(response.json()["total"])

    def _executions(self, task_id: int) -> list[dict[str, Any]]:
        response = self.http.get(
            self._url(f"/api/v1/tasks/{task_id}/executions"), params={"limit": 100}
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    # Invariants -------------------------------------------------------------------------------

    def _check(self) -> None:
        self.report.accepted = len(self.accepted)
        with ThreadPoolExecutor(8) as pool:
            for key, detail in zip(
                self.accepted, pool.map(self._detail, self.accepted.values()), strict=True
            ):
                self._check_task(key, detail)
        for execution_id, history in self.seen.items():
            for old, new in itertools.pairwise(history):
                if ExecutionStatus(new) not in _later(ExecutionStatus(old)):
                    self._violation(f"execution {execution_id} went {old} -> {new}")

    def _detail(self, task_id: int) -> dict[str, Any] | None:
        for _ in range(3):
            with contextlib.suppress(httpx.HTTPError):
                response = self.http.get(self._url(f"/api/v1/tasks/{task_id}"))
                if response.status_code == 404:
                    return None
                return dict(response.json())
        return None

    def _check_task(self, key: str, task: dict[str, Any] | None) -> None:
        if task is None:
            self._violation(f"accepted task {key} is gone")
            return
        self.report.outcomes[task["status"]] += 1
        runs = task["runs"]
        if len(runs) != 1 or RunStatus(runs[0]["status"]) not in RUN_TERMINAL:
            self._violation(f"task {task['id']} has runs {[r['status'] for r in runs]}")
            return
        executions = runs[0]["executions"]
        statuses = Counter(e["status"] for e in executions)
        self.report.executions.update(statuses)
        now = datetime.now(UTC)
        for execution in executions:
            lease = execution["lease_expires_at"]
            if execution["status"] == "running" and lease and datetime.fromisoformat(lease) < now:
                self._violation(f"execution {execution['id']} is running past its lease")
        if statuses["succeeded"] > 1:
            self._violation(f"task {task['id']} has {statuses['succeeded']} succeeded executions")
        if task["status"] == "succeeded" and statuses["succeeded"] != 1:
            self._violation(f"task {task['id']} succeeded without one succeeded execution")
        if task["status"] == "failed" and statuses["lost"] <= LOST_REQUEUE_LIMIT:
            self._violation(f"task {task['id']} failed with only {statuses['lost']} lost leases")
        starts = _lines(self.markers / key)
        allowed = 1 + statuses["lost"]
        self.report.extra_starts += max(starts - 1, 0)
        if starts > allowed:
            self._violation(
                f"task {task['id']} ran {starts} times with {statuses['lost']} lost leases"
            )

    def _check_orphans(self) -> None:
        """After every agent is killed, no worker process may outlive it."""
        for agent in self.agents:
            agent.kill()
        root = str((self.workdir / "agents").resolve())
        deadline = time.monotonic() + 5
        while True:
            left = [p for p in psutil.process_iter(["pid", "cwd"]) if _under(p, root)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for process in left:
            self._violation(f"orphan process {process.pid} left by a killed agent")
            with contextlib.suppress(psutil.Error):
                process.kill()

    def _violation(self, text: str) -> None:
        self.report.violations.append(text)

    def _agents_rss(self) -> float:
        """Mean RSS of the running agents, each with its worker processes."""
        sizes = []
        for agent in self.agents:
            with contextlib.suppress(psutil.Error, BenchError):
                process = psutil.Process(agent.pid)
                family = [process, *process.children(recursive=True)]
                sizes.append(sum(float(p.memory_info().rss) for p in family) / 2**20)
        return round(sum(sizes) / len(sizes), 1) if sizes else 0.0

    def _server_rss(self) -> float:
        with contextlib.suppress(psutil.Error, BenchError):
            return round(float(psutil.Process(self.server.pid).memory_info().rss) / 2**20, 1)
        return 0.0


def _kill_alone(process: Managed) -> None:
    """``kill -9`` of the process only, not its session: what a crash does."""
    os.kill(process.pid, signal.SIGKILL)
    if process.popen is not None:
        process.popen.wait(5)  # reaped, so a respawn does not leave it behind


def _later(status: ExecutionStatus) -> set[ExecutionStatus]:
    """Every status reachable from ``status`` (samples may skip the ones in between), a
    hand-back's one move back included."""
    found: set[ExecutionStatus] = set()
    frontier = [status]
    while frontier:
        current = frontier.pop()
        for following in EXECUTION_TRANSITIONS[current] | EXECUTION_RELEASES.get(current, set()):
            if following not in found:
                found.add(following)
                frontier.append(following)
    return found


def _lines(path: Path) -> int:
    try:
        return len(path.read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        return 0


def _under(process: psutil.Process, root: str) -> bool:
    cwd = process.info.get("cwd")
    return bool(cwd) and str(cwd).startswith(root)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)
