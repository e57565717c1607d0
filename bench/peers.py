"""Octopus side by side with Celery and Huey on this machine's Redis, in one invocation.

Runs ``octopus bench --json --scenarios dispatch_latency,throughput`` first, then the same two
scenarios against each peer: Celery (Redis broker and result backend, prefork ``-c 2``) and
Huey (Redis, 2 process workers), with the same counts. Prints a side-by-side table and the
ratios Octopus/peer. Needs the ``bench`` extra (``pip install -e '.[dev,bench]'``) and Redis
on 127.0.0.1:6379; only the Redis databases named below are used and flushed.

    .venv/bin/python bench/peers.py            # 3 rounds of 200 timed tasks, 5,000 no-ops
    .venv/bin/python bench/peers.py --quick    # 1 round of 100 and 1,000

On a shared 2-core machine the speed of every system drifts by a fifth or more from one
minute to the next, so a full run measures in rounds: each round runs all three systems, each
in another position, and the table shows each figure's median over the rounds (then every
round's own figures).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CELERY_DB, HUEY_DB = 13, 14
"""Redis databases of the peers: flushed before and after, nothing else is touched."""

WARMUP_TASKS = 3
RESULT_TIMEOUT_SECONDS = 120.0

CELERY_APP = f'''"""Celery app of the peer bench."""
import time
from celery import Celery

app = Celery(
    "octobench_peer",
    broker="redis://{REDIS_HOST}:{REDIS_PORT}/{CELERY_DB}",
    backend="redis://{REDIS_HOST}:{REDIS_PORT}/{CELERY_DB}",
)
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task
def mark():
    return time.time()
'''

HUEY_APP = f'''"""Huey app of the peer bench."""
import time
from huey import RedisHuey

huey = RedisHuey("octobench_peer", host="{REDIS_HOST}", port={REDIS_PORT}, db={HUEY_DB})


@huey.task()
def mark():
    return time.time()
'''


@dataclass(slots=True)
class Figures:
    """One system's latency percentiles (ms) and throughput (tasks/s)."""

    p50: float
    p95: float
    p99: float
    tasks_per_s: float
    correct: bool


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation (the one ``octopus bench`` uses)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@contextlib.contextmanager
def worker(command: list[str], cwd: Path, label: str) -> Iterator[None]:
    """Run a peer's worker in its own session; always kill the whole session at the end."""
    log = (cwd / f"{label}.log").open("wb")
    process = subprocess.Popen(
        command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(cwd)},
    )  # fmt: skip
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        log.close()


def flush(db: int) -> None:
    """Empty one Redis database of the bench (never another)."""
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()


def collect(handles: list[Any], poll: Callable[[Any], float | None]) -> list[float]:
    """Every handle's result, polling in order and sleeping while the next is not ready, so
    that waiting costs the workers little CPU; RuntimeError after RESULT_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + RESULT_TIMEOUT_SECONDS
    stamps: list[float] = []
    while len(stamps) < len(handles):
        stamp = poll(handles[len(stamps)])
        if stamp is not None:
            stamps.append(stamp)
        elif time.monotonic() > deadline:
            raise RuntimeError(f"only {len(stamps)} of {len(handles)} results arrived")
        else:
            time.sleep(0.05)
    return stamps


def measure(
    enqueue: Callable[[], Any],
    result: Callable[[Any], float],
    poll: Callable[[Any], float | None],
    latency_tasks: int,
    tasks: int,
) -> Figures:
    """Time ``latency_tasks`` single tasks on an idle worker, then ``tasks`` at once."""
    for _ in range(WARMUP_TASKS):
        result(enqueue())
    latencies = []
    for _ in range(latency_tasks):
        time.sleep(random.uniform(0.01, 0.04))
        posted = time.time()
        latencies.append((result(enqueue()) - posted) * 1000)
    first = time.time()
    handles = [enqueue() for _ in range(tasks)]
    stamps = collect(handles, poll)
    elapsed = max(stamps) - first
    return Figures(
        p50=round(percentile(latencies, 0.5), 2),
        p95=round(percentile(latencies, 0.95), 2),
        p99=round(percentile(latencies, 0.99), 2),
        tasks_per_s=round(tasks / elapsed, 1),
        correct=len(stamps) == tasks,
    )


def run_celery(workdir: Path, latency_tasks: int, tasks: int) -> Figures:
    """Celery 5, Redis broker and backend, prefork with 2 processes."""
    (workdir / "octobench_celery.py").write_text(CELERY_APP)
    sys.path.insert(0, str(workdir))
    import octobench_celery  # type: ignore[import-not-found]

    flush(CELERY_DB)
    command = [sys.executable, "-m", "celery", "-A", "octobench_celery", "worker", "-c", "2"]
    command += ["-P", "prefork", "--loglevel", "WARNING", "--without-gossip"]
    command += ["--without-mingle", "--without-heartbeat"]
    try:
        with worker(command, workdir, "celery"):
            return measure(
                octobench_celery.mark.delay,
                lambda handle: float(handle.get(timeout=RESULT_TIMEOUT_SECONDS)),
                lambda handle: float(handle.result) if handle.ready() else None,
                latency_tasks,
                tasks,
            )
    finally:
        flush(CELERY_DB)


def run_huey(workdir: Path, latency_tasks: int, tasks: int) -> Figures:
    """Huey, Redis storage, 2 process workers."""
    (workdir / "octobench_huey.py").write_text(HUEY_APP)
    sys.path.insert(0, str(workdir))
    import octobench_huey  # type: ignore[import-not-found]

    flush(HUEY_DB)
    command = [sys.executable, "-m", "huey.bin.huey_consumer", "octobench_huey.huey"]
    command += ["-w", "2", "-k", "process", "-q"]
    try:
        with worker(command, workdir, "huey"):
            return measure(
                octobench_huey.mark,
                lambda handle: float(
                    handle.get(blocking=True, timeout=RESULT_TIMEOUT_SECONDS, max_delay=0.01)
                ),
                lambda handle: handle.get(),  # None until the result is there
                latency_tasks,
                tasks,
            )
    finally:
        flush(HUEY_DB)


def run_octopus(quick: bool, latency_tasks: int, tasks: int) -> tuple[Figures, dict[str, Any]]:
    """``octopus bench --json`` for the same two scenarios and counts."""
    command = [sys.executable, "-m", "octopus", "bench", "--json"]
    command += ["--scenarios", "dispatch_latency,throughput"]
    command += ["--tasks", str(latency_tasks), "--throughput-tasks", str(tasks)]
    command += ["--quick"] if quick else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOPUS_")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if not done.stdout.strip():
        raise SystemExit(f"octopus bench failed: {done.stderr.strip().splitlines()[-1:]}")
    report = json.loads(done.stdout)
    latency = report["dispatch_latency_ms"]
    figures = Figures(
        p50=latency["p50"],
        p95=latency["p95"],
        p99=latency["p99"],
        tasks_per_s=report["throughput_tasks_per_s"] or 0.0,
        correct=bool(report["correct"]),
    )
    return figures, report


Runner = Callable[[], Figures]


def run_rounds(runners: dict[str, Runner], rounds: int) -> list[dict[str, Figures]]:
    """Every system once per round, the order turned by one each round; each round's figures
    in the order of ``runners``."""
    names = list(runners)
    measured = []
    for number in range(rounds):
        order = names[number % len(names) :] + names[: number % len(names)]
        figures = {name: runners[name]() for name in order}
        measured.append({name: figures[name] for name in names})
    return measured


def medians(measured: list[dict[str, Figures]]) -> dict[str, Figures]:
    """Each system's figures as the median over the rounds (correct only if every round was)."""
    combined = {}
    for name in measured[0]:
        runs = [round_[name] for round_ in measured]
        combined[name] = Figures(
            p50=round(statistics.median(r.p50 for r in runs), 2),
            p95=round(statistics.median(r.p95 for r in runs), 2),
            p99=round(statistics.median(r.p99 for r in runs), 2),
            tasks_per_s=round(statistics.median(r.tasks_per_s for r in runs), 1),
            correct=all(r.correct for r in runs),
        )
    return combined


def rounds_table(measured: list[dict[str, Figures]]) -> Table:
    """Every round's own figures."""
    out = Table(title="each round")
    for column in ("round", "system", "tasks/s", "latency p50 ms", "p99 ms"):
        out.add_column(column, justify="right")
    for number, figures in enumerate(measured, 1):
        for name, f in figures.items():
            out.add_row(str(number), name, f"{f.tasks_per_s:,.1f}", f"{f.p50:.2f}", f"{f.p99:.2f}")
    return out


def table(results: dict[str, Figures], rounds: int) -> Table:
    """Side by side, with Octopus/peer ratios (throughput: higher is better; latency: lower)."""
    octopus = results["octopus"]
    title = "no-op tasks, 2 worker processes each, this machine"
    if rounds > 1:
        title += f": the median of {rounds} rounds"
    out = Table(title=title)
    for column in ("system", "tasks/s", "latency p50 ms", "p95 ms", "p99 ms", "correct"):
        out.add_column(column, justify="right")
    out.add_column("Octopus/peer: tasks/s, p50, p99", justify="right")
    for name, figures in results.items():
        ratio = ""
        if name != "octopus":
            ratio = (
                f"{octopus.tasks_per_s / figures.tasks_per_s:.2f}x, "
                f"{octopus.p50 / figures.p50:.2f}x, {octopus.p99 / figures.p99:.2f}x"
            )
        out.add_row(
            name, f"{figures.tasks_per_s:,.1f}", f"{figures.p50:.2f}", f"{figures.p95:.2f}",
            f"{figures.p99:.2f}", str(figures.correct).lower(), ratio,
        )  # fmt: skip
    return out


def main() -> None:
    """Parse the options, run Octopus then the peers, print the table (and JSON if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100 timed tasks, 1,000 no-ops")
    parser.add_argument("--tasks", type=int, help="timed tasks (default 200, quick 100)")
    parser.add_argument("--throughput-tasks", type=int, help="no-op tasks (5,000; quick 1,000)")
    parser.add_argument("--rounds", type=int, help="rounds of all three (default 3, quick 1)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args()
    latency_tasks = options.tasks or (100 if options.quick else 200)
    tasks = options.throughput_tasks or (1000 if options.quick else 5000)
    rounds = options.rounds or (1 if options.quick else 3)
    if rounds < 1:
        parser.error("--rounds: must be at least 1")
    reports: list[dict[str, Any]] = []

    def octopus() -> Figures:
        figures, report = run_octopus(options.quick, latency_tasks, tasks)
        reports.append(report)
        return figures

    with tempfile.TemporaryDirectory(prefix="octopus-peers-") as tmp:
        measured = run_rounds(
            {
                "octopus": octopus,
                "celery": lambda: run_celery(Path(tmp), latency_tasks, tasks),
                "huey": lambda: run_huey(Path(tmp), latency_tasks, tasks),
            },
            rounds,
        )
    results = medians(measured)
    console = Console()
    console.print(table(results, rounds))
    if rounds > 1:
        console.print(rounds_table(measured))
    print(f"octopus create path: {reports[-1]['details']['throughput']['create_path']}")
    if options.json:
        data = {name: asdict(figures) for name, figures in results.items()}
        each = [{name: asdict(f) for name, f in round_.items()} for round_ in measured]
        document = {"results": data, "rounds": each, "octopus": reports}
        options.json.write_text(json.dumps(document, indent=2))
    if not all(figures.correct for figures in results.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
