"""Smoke of ``octopus bench``: a tiny run of two scenarios against its own server and agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def _bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOPUS_")}
    return subprocess.run(
        [sys.executable, "-m", "octopus", "bench", *args],
        env={**env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_quick_json_has_the_figures_and_every_task_succeeded_once() -> None:
    done = _bench(
        "--quick", "--json", "--scenarios", "dispatch_latency,heartbeats",
        "--tasks", "10", "--duration", "1", "--heartbeat-clients", "4",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    latency = report["dispatch_latency_ms"]
    assert set(latency) == {"p50", "p95", "p99"}
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert report["heartbeats_per_s"] > 0
    assert report["heartbeat_p99_ms"] > 0
    assert report["correct"] is True
    assert report["errors"] == {}
    assert report["details"]["dispatch_latency"]["tasks"] == 10
    assert "throughput_tasks_per_s" not in report  # not chosen


def test_unknown_scenario_is_one_error_line_and_a_usage_exit() -> None:
    done = _bench("--scenarios", "dispatch_latency,warp_speed", timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "warp_speed" in lines[0]
    assert lines[0].startswith("error:")
