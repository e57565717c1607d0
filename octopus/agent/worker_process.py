"""The agent's handle on one warm worker process: spawn, talk JSON lines, kill its whole tree."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any, Protocol

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


class WorkerListener(Protocol):
    """What a worker tells its owner, each as it happens, from the event loop."""

    def on_message(self, worker: WorkerProcess, message: Message) -> None:
        """A message (a JSON object) arrived."""

    def on_broken(self, worker: WorkerProcess, reason: str) -> None:
        """The worker sent something that is not a protocol message; it should be killed."""

    def on_gone(self, worker: WorkerProcess) -> None:
        """The worker closed its end and exited (``returncode`` says how)."""


class _Lines(asyncio.SubprocessProtocol):
    """Splits the worker's output pipe into JSON messages as the bytes arrive.

    Callbacks rather than a reading task: an execution costs one reply, and a task woken per
    reply would cost the agent more than a no-op action takes.
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.hello: asyncio.Future[Message | None] = loop.create_future()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.worker: WorkerProcess | None = None
        self._buffer = bytearray()
        self._eof = False
        self._broken = False

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self._broken:
            return
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._line(line)
            if self._broken:
                return
        if len(self._buffer) > _PIPE_LIMIT:
            self._break("sent an overlong line")

    def _line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self._break("sent a line that is not JSON")
            return
        if not isinstance(message, dict):
            self._break("sent a line that is not a JSON object")
        elif not self.hello.done():
            self.hello.set_result(message)
        elif self.worker is not None:
            self.worker.listener.on_message(self.worker, message)

    def _break(self, what: str) -> None:
        self._broken = True
        self._buffer.clear()
        if not self.hello.done():
            self.hello.set_result(None)
        elif self.worker is not None:
            self.worker.listener.on_broken(self.worker, f"worker {self.worker.pid} {what}")

    @property
    def closed(self) -> bool:
        """Whether the worker has closed its output (it is gone or going)."""
        return self._eof

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._eof = True
            self._maybe_gone()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        self._maybe_gone()

    def _maybe_gone(self) -> None:
        # Both, so that every reply written before the exit has been delivered first.
        if not (self._eof and self.exited.done()):
            return
        if not self.hello.done():
            self.hello.set_result(None)
        elif self.worker is not None:
            worker, self.worker = self.worker, None
            worker.ended()


class WorkerProcess:
    """One worker process, in its own session so its whole process tree can be killed."""

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        lines: _Lines,
        listener: WorkerListener,
    ) -> None:
        self._transport = transport
        self._lines = lines
        self.listener = listener
        self.pid: int = transport.get_pid()
        pipe = transport.get_pipe_transport(0)
        assert isinstance(pipe, asyncio.WriteTransport)
        self._input = pipe

    @classmethod
    async def spawn(
        cls,
        listener: WorkerListener,
        *,
        env: Mapping[str, str],
        python: str = sys.executable,
        timeout_seconds: float = 30.0,
    ) -> WorkerProcess:
        """Start a worker and wait until it says it is ready; from then on ``listener``
        hears its messages and its end.

        Raises:
            WorkerError: The worker exited or did not answer within ``timeout_seconds``.
        """
        loop = asyncio.get_running_loop()
        try:
            transport, lines = await loop.subprocess_exec(
                _Lines,
                python,
                "-u",
                "-m",
                "octopus.agent.worker",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise WorkerError(f"cannot start a worker with {python}: {exc}") from exc
        worker = cls(transport, lines, listener)
        try:
            hello = await asyncio.wait_for(asyncio.shield(lines.hello), timeout_seconds)
        except TimeoutError:
            hello = None
        except BaseException:  # cancelled while starting: leave no orphan behind
            await worker.kill_tree()
            raise
        # A worker that ended between its hello and now would never be heard of again.
        if hello is None or hello.get("event") != "ready" or lines.closed or not worker.alive:
            await worker.kill_tree()
            code = transport.get_returncode()
            raise WorkerError(f"worker process exited with code {code} at start")
        lines.worker = worker  # no await since the look above: it cannot end unheard
        logger.debug("Worker %s is ready", worker.pid)
        return worker

    @property
    def alive(self) -> bool:
        """True until the process has exited."""
        return self._transport.get_returncode() is None

    @property
    def returncode(self) -> int | None:
        """The exit code, negative for a signal, None while running."""
        return self._transport.get_returncode()

    def ended(self) -> None:
        """Release the process's pipes and tell the listener it is gone."""
        self._transport.close()
        self.listener.on_gone(self)

    def send(self, message: Message) -> None:
        """Write one request line (a worker that is gone is heard of through ``on_gone``)."""
        self._input.write(json.dumps(message, allow_nan=False).encode("ascii") + b"\n")

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
        await asyncio.shield(self._lines.exited)
        self._transport.close()

    async def close(self, grace_seconds: float = 2.0) -> None:
        """Ask the worker to exit by closing its stdin; kill its tree if it does not."""
        self._input.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._lines.exited), grace_seconds)
        except TimeoutError:
            await self.kill_tree()
        self._transport.close()
