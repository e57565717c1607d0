"""Measures the time from ``POST /api/v1/tasks`` to the action starting on an idle agent.

Starts a real server (SQLite in a temporary data dir) and one real agent, creates tasks one
at a time, and reads each execution's ``started_at`` (stamped by the worker just before the
action is called). Prints p50, p95 and p99 in milliseconds.

    .venv/bin/python bench/dispatch_latency.py --tasks 100
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-admin-token-0123456789"
JOIN = "bench-join-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError("condition not met in time")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(tasks: int) -> list[float]:
    work = Path(tempfile.mkdtemp(prefix="octopus-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OCTOPUS_ADMIN_TOKEN": TOKEN, "OCTOPUS_JOIN_TOKEN": JOIN}
    octopus = [sys.executable, "-m", "octopus"]
    server = subprocess.Popen(
        [
            *octopus,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(work / "data"),
            "--plugins-dir",
            str(REPO / "plugins"),
            "--log-level",
            "WARNING",
        ],
        env=env,
    )
    agent = None
    try:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
        wait_for(lambda: client.get("/healthz").status_code == 200, 30)
        agent = subprocess.Popen(
            [
                *octopus,
                "agent",
                "--server",
                url,
                "--name",
                "bench-1",
                "--concurrency",
                "2",
                "--state-dir",
                str(work / "agent"),
                "--log-level",
                "WARNING",
            ],
            env=env,
        )
        wait_for(lambda: client.get("/api/v1/agents/bench-1").status_code == 200, 30)
        latencies = []
        for _ in range(tasks):
            time.sleep(random.uniform(0.01, 0.05))
            posted = time.time()
            task = client.post("/api/v1/tasks", json={"plugin": "example", "action": "hello"})
            task_id = task.json()["id"]

            def done(task_id: int = task_id) -> bool:
                return bool(client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "succeeded")

            wait_for(done, 30)
            execution = client.get(f"/api/v1/tasks/{task_id}/executions").json()["items"][0]
            started = datetime.fromisoformat(execution["started_at"]).timestamp()
            latencies.append((started - posted) * 1000)
        return latencies
    finally:
        for process in (agent, server):
            if process is not None:
                process.terminate()
                process.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    latencies = measure(parser.parse_args().tasks)
    print(
        f"dispatch latency over {len(latencies)} tasks: "
        f"p50 {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
    )


if __name__ == "__main__":
    main()
