"""Schedule lag: how late an interval run's action starts against the run's fire time.

Starts its own server (SQLite, in a temporary dir) and one idle agent (concurrency 2), creates
interval tasks (1 s by default) that run ``octobench.mark`` (which returns the wall-clock time
it started), lets them fire until ``--firings`` runs succeeded, cancels them, and prints p50,
p99 and max of two lateness figures per run:

- ``action``: the action's own start time (its result) minus the run's ``fire_time``;
- ``started_at``: the execution's ``started_at`` (the claim) minus the run's ``fire_time``.

    .venv/bin/python bench/schedule_lag.py                 # 1,000 firings of 4 tasks at 1 s
    .venv/bin/python bench/schedule_lag.py --firings 200 --tasks 2
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from octopus.bench.api import BENCH_LABELS
from octopus.bench.plugin import PLUGIN_NAME, write_plugin
from octopus.bench.processes import AgentProcess, ServerProcess, clean_env

WARMUP_RUNS = 2
"""Runs per task not counted: the agent downloads the plugin, its workers import it."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def lags(run: dict[str, Any]) -> tuple[list[float], list[float]]:
    """(action, started_at) lateness in ms of the succeeded executions of one run."""
    fired = datetime.fromisoformat(run["fire_time"]).timestamp()
    action: list[float] = []
    claimed: list[float] = []
    for execution in run["executions"]:
        if execution["status"] == "succeeded":
            action.append((execution["result"] - fired) * 1000)
            started = datetime.fromisoformat(execution["started_at"]).timestamp()
            claimed.append((started - fired) * 1000)
    return action, claimed


def measure(client: httpx.Client, *, firings: int, tasks: int, interval: float) -> dict[str, Any]:
    """Create the tasks, collect their finished runs (the detail shows the newest 20, so it is
    read every couple of seconds) until ``firings`` are in, then cancel them."""
    body = {
        "plugin": PLUGIN_NAME,
        "action": "mark",
        "labels": BENCH_LABELS,
        "type": "interval",
        "interval_seconds": interval,
    }
    ids = [
        client.post("/api/v1/tasks", json=body).raise_for_status().json()["id"]
        for _ in range(tasks)
    ]
    finished: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + firings * interval / tasks * 2 + 60
    while len(finished) < firings + WARMUP_RUNS * tasks and time.monotonic() < deadline:
        time.sleep(min(2.0, 10 * interval))
        for task_id in ids:
            for run in client.get(f"/api/v1/tasks/{task_id}").json()["runs"]:
                if run["status"] == "succeeded":
                    finished[run["id"]] = run
    for task_id in ids:
        client.post(f"/api/v1/tasks/{task_id}/cancel")
    by_task: dict[int, list[dict[str, Any]]] = {}
    for run in finished.values():
        by_task.setdefault(run["task_id"], []).append(run)
    action: list[float] = []
    claimed: list[float] = []
    for runs in by_task.values():
        for run in sorted(runs, key=lambda r: r["fire_time"])[WARMUP_RUNS:]:
            run_action, run_claimed = lags(run)
            action += run_action
            claimed += run_claimed
    return {"action": action[:firings], "started_at": claimed[:firings]}


def report(name: str, values: list[float]) -> str:
    return (
        f"{name:>10}: n={len(values)} p50={percentile(values, 0.5):.1f} ms "
        f"p99={percentile(values, 0.99):.1f} ms max={max(values):.1f} ms "
        f"mean={statistics.fmean(values):.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firings", type=int, default=1000, help="runs to measure")
    parser.add_argument("--tasks", type=int, default=4, help="interval tasks firing at once")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between firings")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="octopus-schedule-lag-"))
    admin, join = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = clean_env(OCTOPUS_ADMIN_TOKEN=admin, OCTOPUS_JOIN_TOKEN=join)
    server = ServerProcess(workdir, plugins_dir=write_plugin(workdir / "plugins").parent, env=env)
    agent: AgentProcess | None = None
    try:
        server.start()
        labels = ",".join(f"{k}={v}" for k, v in BENCH_LABELS.items())
        agent = AgentProcess(workdir, name="lag-agent", server_url=server.url, env=env,
                             concurrency=2, labels=labels)  # fmt: skip
        agent.start(admin)
        headers = {"Authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            figures = measure(
                client, firings=args.firings, tasks=args.tasks, interval=args.interval
            )
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"schedule lag over interval firings every {args.interval:g} s on one idle agent")
    for name, values in figures.items():
        print(report(name, values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
