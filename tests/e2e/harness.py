"""Real ``octopus server`` and ``octopus agent`` processes for the end-to-end tests.

Every process runs in its own session with stdout and stderr captured to files under the
test's tmp dir; ``REGISTRY`` holds the live ones so a failing test can show their tails and
teardown can always kill them (and any worker processes they left behind).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[2]
REPO_PLUGINS = REPO / "plugins"
TEST_PLUGINS = Path(__file__).resolve().parent / "plugins"

ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"
JOIN_TOKEN = "e2e-join-token-0123456789abcdef"
CLIENT_TIMEOUT_SECONDS = 3.0
HEARTBEAT_INTERVAL_SECONDS = 0.5
PLUGIN_SCAN_SECONDS = 0.5
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 20.0

TASK_DONE = ("succeeded", "failed", "cancelled")
EXECUTION_DONE = ("succeeded", "failed", "timed_out", "cancelled", "lost")

T = TypeVar("T")
REGISTRY: list[ManagedProcess] = []


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited and the last value seen."""


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 15.0,
    interval: float = 0.1,
    message: str = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; fail after ``timeout``.

    Exceptions from the predicate count as "not yet" (a server restarting refuses connections).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {message}; last: {last!r}")
        time.sleep(interval)


def stays(predicate: Callable[[], object], duration: float, interval: float = 0.1) -> bool:
    """Whether ``predicate`` holds on every check during ``duration`` seconds."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(interval)
    return bool(predicate())


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def octopus_command(*args: str) -> list[str]:
    """The command line that runs ``octopus`` with this interpreter."""
    return [sys.executable, "-m", "octopus", *args]


def base_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any OCTOPUS_* setting, plus the test values."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOPUS_")}
    env.update(
        OCTOPUS_ADMIN_TOKEN=ADMIN_TOKEN,
        OCTOPUS_JOIN_TOKEN=JOIN_TOKEN,
        OCTOPUS_CLIENT_TIMEOUT=str(CLIENT_TIMEOUT_SECONDS),
        OCTOPUS_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL_SECONDS),
        OCTOPUS_PLUGIN_SCAN_SECONDS=str(PLUGIN_SCAN_SECONDS),
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
        COLUMNS="200",
    )
    env.update(overrides)
    return env


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``octopus ARGS`` to completion and return its exit code and output."""
    return subprocess.run(
        octopus_command(*args),
        env=dict(env) if env is not None else base_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output file)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


class ManagedProcess:
    """One child process: start, SIGTERM, SIGKILL, wait, and the tails of its output."""

    def __init__(self, label: str, workdir: Path, env: dict[str, str]) -> None:
        self.label = label
        self.workdir = workdir
        self.env = env
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / f"{label}.stdout.log"
        self.stderr_path = workdir / f"{label}.stderr.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        """The command line to run; subclasses say what."""
        raise NotImplementedError

    @property
    def pid(self) -> int:
        """The pid of the running process."""
        assert self.popen is not None, f"{self.label} was never started"
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it runs."""
        return None if self.popen is None else self.popen.poll()

    def is_running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def spawn(self) -> None:
        """Start the process, appending to its output files (kept across restarts)."""
        assert not self.is_running(), f"{self.label} is already running"
        self.starts += 1
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            banner = f"\n----- start #{self.starts}: {' '.join(self.command())}\n".encode()
            out.write(banner)
            err.write(banner)
            out.flush()
            err.flush()
            self.popen = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,  # its own process group: cleanup reaches its workers
            )
        if self not in REGISTRY:
            REGISTRY.append(self)

    def wait(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Wait for the process to exit and return its code; fail after ``timeout``."""
        assert self.popen is not None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"{self.label} did not exit within {timeout:g}s") from None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process itself (not its group)."""
        if self.is_running():
            os.kill(self.pid, signum)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; return the exit code."""
        if self.popen is None:
            return 0
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.wait(5)

    def kill(self) -> None:
        """SIGKILL the process only, as a crash would; its children are left to notice."""
        if self.is_running():
            os.kill(self.pid, signal.SIGKILL)
            assert self.popen is not None
            self.popen.wait(5)

    def cleanup(self) -> None:
        """Kill the whole process group, whatever state it is in, and forget the process."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)
        if self in REGISTRY:
            REGISTRY.remove(self)

    def tails(self, lines: int = 60) -> str:
        """The last lines of stdout and stderr, for a failure report."""
        state = "running" if self.is_running() else f"exited {self.returncode}"
        out, err = _tail(self.stdout_path, lines), _tail(self.stderr_path, lines)
        return (
            f"== {self.label} ({state}) stdout: {self.stdout_path}\n{out}\n"
            f"== {self.label} stderr: {self.stderr_path}\n{err}"
        )


def copy_plugins(dest: Path, sources: Iterable[Path] = (REPO_PLUGINS, TEST_PLUGINS)) -> Path:
    """Fill ``dest`` with the ``*.py`` plugins of ``sources`` (later ones win)."""
    dest.mkdir(parents=True, exist_ok=True)
    for folder in sources:
        for source in sorted(folder.glob("*.py")):
            shutil.copyfile(source, dest / source.name)
    return dest


class ServerProcess(ManagedProcess):
    """``octopus server`` on a free port with its own data and plugins dirs."""

    def __init__(
        self,
        root: Path,
        *,
        database_url: str | None = None,
        port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        label: str = "server",
    ) -> None:
        super().__init__(label, root, base_env(**(extra_env or {})))
        self.port = port or free_port()
        self.data_dir = root / "data"
        self.plugins_dir = copy_plugins(root / "plugins")
        self.database_url = database_url
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [
            "server",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            "--plugins-dir", str(self.plugins_dir),
        ]  # fmt: skip
        if self.database_url:
            args += ["--database-url", self.database_url]
        return octopus_command(*args)

    def healthy(self) -> bool:
        """Whether /healthz answers ok."""
        try:
            response = httpx.get(f"{self.url}/healthz", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json().get("status") == "ok"

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> ServerProcess:
        """Spawn and wait until /healthz answers; fail early if the process exits."""
        self.spawn()

        def ready() -> bool:
            if not self.is_running():
                raise WaitTimeout(f"{self.label} exited with {self.returncode}\n{self.tails()}")
            return self.healthy()

        wait_for(ready, timeout, 0.1, f"{self.label} /healthz")
        return self

    def restart(self) -> ServerProcess:
        """Stop gracefully and start again on the same port, data dir and plugins dir."""
        code = self.stop()
        assert code == 0, f"{self.label} exited with {code} on SIGTERM\n{self.tails()}"
        return self.start()

    def api(self) -> ApiClient:
        """An admin client for this server."""
        return ApiClient(self.url, ADMIN_TOKEN)


class AgentProcess(ManagedProcess):
    """``octopus agent`` connected to a server, with its own state dir."""

    def __init__(
        self,
        server: ServerProcess,
        name: str,
        root: Path,
        *,
        concurrency: int = 2,
        labels: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"agent-{name}", root / name, base_env(**(extra_env or {})))
        self.server = server
        self.name = name
        self.concurrency = concurrency
        self.labels = dict(labels or {})
        self.extra_args = list(extra_args)
        self.state_dir = self.workdir / "state"
        self.spawned_at = 0.0

    def command(self) -> list[str]:
        args = [
            "agent",
            "--server", self.server.url,
            "--name", self.name,
            "--state-dir", str(self.state_dir),
            "--concurrency", str(self.concurrency),
            "--heartbeat-interval", str(HEARTBEAT_INTERVAL_SECONDS),
        ]  # fmt: skip
        if self.labels:
            args += ["--labels", ",".join(f"{k}={v}" for k, v in self.labels.items())]
        return octopus_command(*args, *self.extra_args)

    def spawn(self) -> None:
        """Start the process; ``wait_online`` then looks for heartbeats newer than this."""
        self.spawned_at = time.time()
        super().spawn()

    def wait_online(self, timeout: float = START_TIMEOUT_SECONDS) -> AgentProcess:
        """Wait until the server shows this agent online with a heartbeat since the spawn."""
        with self.server.api() as api:

            def online() -> bool:
                if not self.is_running():
                    raise WaitTimeout(f"{self.label} exited with {self.returncode}\n{self.tails()}")
                return api.agent_online_since(self.name, self.spawned_at)

            wait_for(online, timeout, 0.1, f"{self.name} online")
        return self

    def start(self, *, wait_online: bool = True) -> AgentProcess:
        """Spawn; by default wait until the server lists this agent as online."""
        self.spawn()
        return self.wait_online() if wait_online else self


class ApiClient:
    """The admin API over httpx, with helpers that assert on status codes."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ok(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        """Send a request, assert the status code, return the JSON body."""
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == expect, (
            f"{method} {path} -> {response.status_code}, expected {expect}: {response.text}"
        )
        return response.json() if response.content else None

    def create_task(self, plugin_action: str, *args: Any, **fields: Any) -> dict[str, Any]:
        """POST a task for ``plugin.action`` with positional ``args`` and other fields."""
        plugin, _, action = plugin_action.partition(".")
        body = {"plugin": plugin, "action": action, "args": list(args), **fields}
        return dict(self.ok("POST", "/api/v1/tasks", 201, json=body))

    def get_task(self, task_id: int) -> dict[str, Any]:
        """GET one task with its runs and executions."""
        return dict(self.ok("GET", f"/api/v1/tasks/{task_id}"))

    def cancel_task(self, task_id: int) -> dict[str, Any]:
        """POST a cancel."""
        return dict(self.ok("POST", f"/api/v1/tasks/{task_id}/cancel"))

    def executions(self, task_id: int) -> list[dict[str, Any]]:
        """Every execution of every run of a task, oldest first."""
        task = self.get_task(task_id)
        found = [e for run in task["runs"] for e in run["executions"]]
        return sorted(found, key=lambda e: e["id"])

    def wait_task(
        self, task_id: int, statuses: Sequence[str] = TASK_DONE, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Wait until the task's status is one of ``statuses``; return the task detail."""

        def reached() -> dict[str, Any] | None:
            task = self.get_task(task_id)
            return task if task["status"] in statuses else None

        return wait_for(reached, timeout, 0.1, f"task {task_id} in {list(statuses)}")

    def wait_execution(
        self, task_id: int, statuses: Sequence[str], timeout: float = 30.0, count: int = 1
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` executions of the task have a status in ``statuses``."""

        def reached() -> list[dict[str, Any]] | None:
            found = [e for e in self.executions(task_id) if e["status"] in statuses]
            return found if len(found) >= count else None

        return wait_for(reached, timeout, 0.1, f"{count} executions of {task_id} in {statuses}")

    def log(self, execution_id: int) -> dict[str, Any]:
        """The captured output of one execution."""
        return dict(self.ok("GET", f"/api/v1/executions/{execution_id}/log"))

    def agent(self, name: str) -> dict[str, Any] | None:
        """One agent, or None when the server does not know it."""
        response = self.http.get(f"/api/v1/agents/{name}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return dict(response.json())

    def agent_online_since(self, name: str, since: float) -> bool:
        """Whether the agent is online with a heartbeat newer than ``since`` (epoch seconds)."""
        agent = self.agent(name)
        if agent is None or agent["status"] != "online" or not agent["last_heartbeat"]:
            return False
        return datetime.fromisoformat(agent["last_heartbeat"]).timestamp() >= since - 1.0

    def wait_agent(self, name: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until the server shows the agent with ``status``."""

        def reached() -> dict[str, Any] | None:
            agent = self.agent(name)
            return agent if agent and agent["status"] == status else None

        return wait_for(reached, timeout, 0.1, f"agent {name} {status}")

    def plugin(self, name: str) -> dict[str, Any] | None:
        """One plugin, or None when the server does not have it."""
        response = self.http.get(f"/api/v1/plugins/{name}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return dict(response.json())
