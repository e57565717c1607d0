"""The agent's handle on one warm worker process: spawn, talk JSON lines, kill its whole tree."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

import psutil

from octopus.agent.worker import PARENT_ENV
from octopus.errors import OctopusError
from octopus.plugins.builtin.shell import ALLOW_ENV

logger = logging.getLogger(__name__)

_PIPE_LIMIT = 16 * 1024 * 1024
"""Longest protocol line accepted from a worker (results are capped well below this)."""

_SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "DATABASE_URL")

Message = dict[str, Any]


class WorkerError(OctopusError):
    """A worker process could not be started or broke the protocol."""


def worker_environment(base: Mapping[str, str], *, allow_shell: bool) -> dict[str, str]:
    """Return the environment for worker processes.

    Octopus secrets (``OCTOPUS_*TOKEN*`` and the like) are removed, so plugin code cannot read
    the admin, join or agent token; ``OCTOPUS_ALLOW_SHELL=1`` is set only if ``allow_shell``.
    """
    env = {
        key: value
        for key, value in base.items()
        if key != ALLOW_ENV
        and not (key.startswith("OCTOPUS_") and any(mark in key for mark in _SECRET_MARKERS))
    }
    if allow_shell:
        env[ALLOW_ENV] = "1"
    env[PARENT_ENV] = str(os.getpid())
    return env


class WorkerProcess:
    """One worker process, in its own session so its whole process tree can be killed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid

    @classmethod
    async def spawn(
        cls, *, env: Mapping[str, str], python: str = sys.executable, timeout_seconds: float = 30.0
    ) -> WorkerProcess:
        """Start a worker and wait until it says it is ready.

        Raises:
            WorkerError: The worker exited or did not answer within ``timeout_seconds``.
        """
        try:
            process = await cls._start_process(env, python)
        except OSError as exc:
            raise WorkerError(f"cannot start a worker with {python}: {exc}") from exc
        worker = cls(process)
        try:
            hello = await asyncio.wait_for(worker.receive(), timeout_seconds)
        except (TimeoutError, WorkerError):
            hello = None
        except BaseException:  # cancelled while starting: leave no orphan behind
            await worker.kill_tree()
            raise
        if hello is None or hello.get("event") != "ready":
            await worker.kill_tree()
            raise WorkerError(f"worker process exited with code {process.returncode} at start")
        logger.debug("Worker %s is ready", worker.pid)
        return worker

    @staticmethod
    async def _start_process(env: Mapping[str, str], python: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            python,
            "-u",
            "-m",
            "octopus.agent.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
            limit=_PIPE_LIMIT,
        )

    @property
    def alive(self) -> bool:
        """True until the process has exited."""
        return self._process.returncode is None

    @property
    def returncode(self) -> int | None:
        """The exit code, negative for a signal, None while running."""
        return self._process.returncode

    async def send(self, message: Message) -> None:
        """Write one request line."""
        assert self._process.stdin is not None
        line = json.dumps(message, allow_nan=False).encode("ascii") + b"\n"
        try:
            self._process.stdin.write(line)
            await self._process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise WorkerError(f"worker {self.pid} is gone") from exc

    async def receive(self) -> Message | None:
        """Read one message; None when the worker has closed its end (it died).

        Raises:
            WorkerError: The line is not a JSON object.
        """
        assert self._process.stdout is not None
        try:
            line = await self._process.stdout.readline()
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise WorkerError(f"worker {self.pid} sent an overlong line") from exc
        if not line:
            await self._process.wait()
            return None
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise WorkerError(f"worker {self.pid} sent a line that is not JSON") from exc
        if not isinstance(message, dict):
            raise WorkerError(f"worker {self.pid} sent a line that is not a JSON object")
        return message

    async def kill_tree(self) -> None:
        """SIGKILL the worker's process group and every descendant, then reap the worker."""
        pid = self.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGSTOP)  # freeze the group so it cannot fork while we look
        try:
            descendants = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for child in descendants:  # children that left the group with setsid()
            with contextlib.suppress(psutil.Error):
                child.kill()
        await self._process.wait()

    async def close(self, grace_seconds: float = 2.0) -> None:
        """Ask the worker to exit by closing its stdin; kill its tree if it does not."""
        if self._process.stdin is not None and not self._process.stdin.is_closing():
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), grace_seconds)
        except TimeoutError:
            await self.kill_tree()
