"""Server and agent processes the bench starts: spawn, wait until ready, stop, always clean up.

Each process runs in its own session, so stopping it reaches its worker processes too; output
goes to files in the bench's work dir, and their tails explain a failed start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from octopus.errors import OctopusError

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


class BenchError(OctopusError):
    """The bench could not set up or run a scenario (a process did not start, a call failed)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    """This environment without OCTOPUS_* settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCTOPUS_")}
    env.update(values, PYTHONUNBUFFERED="1")
    return env


class Managed:
    """One child ``octopus`` process in its own session, with its output in ``workdir``."""

    def __init__(self, label: str, workdir: Path, args: list[str], env: Mapping[str, str]) -> None:
        self.label = label
        self.workdir = workdir
        self.args = args
        self.env = dict(env)
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process id; BenchError if it was never started."""
        if self.popen is None:
            raise BenchError(f"{self.label} is not running")
        return self.popen.pid

    def spawn(self) -> None:
        """Start the process, appending its output to ``<label>.log``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / f"{self.label}.log").open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "octopus", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,
            )

    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready`` until true; BenchError if the process exits or time runs out."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not self.running():
                raise BenchError(f"{self.label} exited at start: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if ready():
                    return
            time.sleep(0.1)
        raise BenchError(f"{self.label}: no {what} within {START_TIMEOUT_SECONDS:g}s")

    def tail(self) -> str:
        """The last line of the process's output."""
        try:
            lines = (self.workdir / f"{self.label}.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no output)"
        return lines[-1] if lines else "(no output)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL of the whole session if it does not exit in time."""
        if self.popen is None:
            return
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process and everything left in its session."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


class ServerProcess(Managed):
    """``octopus server`` on a free loopback port with the given data and plugins dirs."""

    def __init__(
        self,
        workdir: Path,
        *,
        plugins_dir: Path,
        env: Mapping[str, str],
        database_url: str | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / "data"
        args = ["server", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--data-dir", str(self.data_dir), "--plugins-dir", str(plugins_dir)]
        args += ["--log-level", "WARNING"]
        if database_url:
            args += ["--database-url", database_url]
        super().__init__("server", workdir, args, env)
        self.database_url = database_url or f"sqlite:///{(self.data_dir / 'octopus.db').resolve()}"

    def start(self) -> ServerProcess:
        """Spawn and wait until ``/healthz`` answers."""
        self.spawn()
        self.wait_until(lambda: httpx.get(f"{self.url}/healthz", timeout=2).is_success, "/healthz")
        return self


class AgentProcess(Managed):
    """``octopus agent`` with its own state dir, enrolled with the join token."""

    def __init__(
        self,
        workdir: Path,
        *,
        name: str,
        server_url: str,
        env: Mapping[str, str],
        concurrency: int,
        labels: str,
    ) -> None:
        self.name = name
        self.server_url = server_url
        args = ["agent", "--server", server_url, "--name", name, "--labels", labels]
        args += ["--concurrency", str(concurrency), "--state-dir", str(workdir / name)]
        args += ["--log-level", "WARNING"]
        super().__init__(f"agent-{name}", workdir, args, env)

    def start(self, admin_token: str) -> AgentProcess:
        """Spawn and wait until the server lists this agent as online."""
        self.spawn()
        headers = {"Authorization": f"Bearer {admin_token}"}

        def online() -> bool:
            response = httpx.get(
                f"{self.server_url}/api/v1/agents/{self.name}", headers=headers, timeout=2
            )
            return response.is_success and response.json()["status"] == "online"

        self.wait_until(online, "online status")
        return self
