"""Agents that ``octopus server --local-agents N`` starts beside itself on one machine."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


class LocalAgents:
    """Child agent processes that share the server's lifetime."""

    def __init__(self, *, count: int, server_url: str, join_token: str, data_dir: Path) -> None:
        self._count = count
        self._server_url = server_url
        self._join_token = join_token
        self._data_dir = data_dir
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Start the agents, named ``local-1`` ... ``local-N``, state under the data dir."""
        for index in range(1, self._count + 1):
            name = f"local-{index}"
            env = {**os.environ, "OCTOPUS_JOIN_TOKEN": self._join_token}
            env.pop("OCTOPUS_ADMIN_TOKEN", None)
            command = [
                sys.executable, "-m", "octopus", "agent",
                "--server", self._server_url,
                "--name", name,
                "--state-dir", str(self._data_dir / "local-agents" / name),
            ]  # fmt: skip
            self._processes.append(subprocess.Popen(command, env=env))
            logger.info("Started local agent %s", name, extra={"agent": name})

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every agent (they drain), then SIGKILL those still running after ``timeout``."""
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
