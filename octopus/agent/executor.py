"""The executor: a pool of warm worker processes that run executions with timeouts and cancel."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import itertools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from octopus.agent.worker_process import Message, WorkerError, WorkerProcess, worker_environment
from octopus.core.enums import ExecutionStatus
from octopus.core.models import ExecutionError
from octopus.schemas.agents import MAX_LOG_BYTES

logger = logging.getLogger(__name__)

OutputCallback = Callable[[int, str], None]

_TRUNCATION_RESERVE = 100
"""Characters kept free in a truncated log for the marker between head and tail."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRequest:
    """What to run: one execution of a plugin action, with the plugin file already local."""

    id: int
    plugin: str
    sha256: str
    path: Path
    action: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout_seconds: float | None = None
    task_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionOutcome:
    """How one execution ended, with its bounded captured output."""

    id: int
    status: ExecutionStatus
    result: Any = None
    error: ExecutionError | None = None
    log: str = ""
    log_truncated: bool = False
    started_at: datetime
    finished_at: datetime
    worker_pid: int | None = None


class Executor:
    """Runs executions in ``size`` warm worker processes, one execution per worker at a time.

    Workers start once (``start``) and are reused; a worker killed for a timeout or a cancel,
    or one that died, is replaced in the background. Use as ``async with Executor(...)``.
    """

    def __init__(
        self,
        *,
        size: int,
        work_dir: Path,
        allow_shell: bool = False,
        environ: Mapping[str, str] | None = None,
        python: str = sys.executable,
        start_timeout_seconds: float = 30.0,
        on_output: OutputCallback | None = None,
        output_interval_seconds: float = 0.5,
    ) -> None:
        """Prepare the pool; nothing starts until ``start``.

        Args:
            size: Number of workers, which is the number of concurrent executions.
            work_dir: Where per-execution capture files are written (and removed).
            allow_shell: Let the built-in shell plugin run commands.
            environ: Base environment for workers (default: this process's, minus secrets).
            python: The interpreter that runs workers.
            start_timeout_seconds: How long a worker may take to become ready.
            on_output: Called with an execution's id and its new output while it runs.
            output_interval_seconds: How often running executions' output is looked at.
        """
        self.size = size
        self._work_dir = work_dir
        self._env = worker_environment(
            os.environ if environ is None else environ, allow_shell=allow_shell
        )
        self._python = python
        self._start_timeout_seconds = start_timeout_seconds
        self._idle: asyncio.Queue[WorkerProcess | None] = asyncio.Queue()
        self._workers: set[WorkerProcess] = set()
        self._stops: dict[int, asyncio.Event] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._numbers = itertools.count(1)
        self._on_output = on_output
        self._output_interval_seconds = output_interval_seconds
        self._following: dict[int, OutputFollower] = {}
        self._follower: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start every worker and wait until all are ready.

        Raises:
            WorkerError: A worker could not start; those already started are stopped.
        """
        self._work_dir.mkdir(parents=True, exist_ok=True)
        results = await asyncio.gather(
            *(self._spawn() for _ in range(self.size)), return_exceptions=True
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        for result in results:
            if isinstance(result, WorkerProcess):
                self._idle.put_nowait(result)
        if failures:
            await self.close()
            raise WorkerError(f"cannot start workers: {failures[0]}")
        if self._on_output is not None:
            self._follower = asyncio.create_task(self._follow_output(self._on_output))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def running(self) -> tuple[int, ...]:
        """Ids of the executions started and not finished."""
        return tuple(self._stops)

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """Pids of the live worker processes."""
        return tuple(worker.pid for worker in self._workers if worker.alive)

    def cancel(self, execution_id: int) -> bool:
        """Stop an execution: its worker's process tree is killed and it ends ``cancelled``.

        Returns:
            True if the execution was running here.
        """
        stop = self._stops.get(execution_id)
        if stop is not None:
            stop.set()
        return stop is not None

    async def run(self, request: ExecutionRequest) -> ExecutionOutcome:
        """Run one execution in a free worker and return how it ended (never raises for it).

        Waits for a free worker if all are busy; a cancel while it waits ends it ``cancelled``
        at once. A timeout or a cancel while it runs kills the worker's whole process tree; the
        outcome is then ``timed_out`` or ``cancelled``. Its ``started_at`` is when a worker
        took it (or when it ended, if none did).
        """
        if request.id in self._stops:
            raise ValueError(f"execution {request.id} is already running")
        stop = self._stops[request.id] = asyncio.Event()
        try:
            try:
                worker = await self._acquire(stop)
            except WorkerError as exc:
                return _outcome(request, ExecutionStatus.FAILED, error=_error(exc))
            if worker is None:
                return _outcome(request, ExecutionStatus.CANCELLED)
            try:
                return await self._drive(worker, request, stop)
            finally:
                self._release(worker)
        finally:
            del self._stops[request.id]

    async def close(self) -> None:
        """Stop all workers: close their input, wait briefly, then kill what is left."""
        tasks = [*self._background, *([self._follower] if self._follower else [])]
        self._follower = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(worker.close() for worker in self._workers))
        self._workers.clear()

    async def _spawn(self) -> WorkerProcess:
        worker = await WorkerProcess.spawn(
            env=self._env, python=self._python, timeout_seconds=self._start_timeout_seconds
        )
        self._workers.add(worker)
        return worker

    async def _acquire(self, stop: asyncio.Event) -> WorkerProcess | None:
        """A ready worker, or None if ``stop`` is set before one is free."""
        try:
            worker = self._idle.get_nowait()
        except asyncio.QueueEmpty:
            stopped, worker = await self._wait_idle(stop)
            if stopped:
                return None
        if worker is not None and worker.alive:
            return worker
        try:
            return await self._spawn()
        except WorkerError:
            self._idle.put_nowait(None)
            raise

    async def _wait_idle(self, stop: asyncio.Event) -> tuple[bool, WorkerProcess | None]:
        """Whether ``stop`` came first, else the queue's next entry (a worker, or None)."""
        getter = asyncio.ensure_future(self._idle.get())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({getter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not getter.done():
                # Queue.get hands a worker it was woken for to the next getter when cancelled.
                getter.cancel()
        if not getter.done():
            return True, None
        worker = getter.result()
        if stop.is_set():
            self._idle.put_nowait(worker)
            return True, None
        return False, worker

    def _release(self, worker: WorkerProcess) -> None:
        if worker.alive:
            self._idle.put_nowait(worker)
            return
        self._workers.discard(worker)
        task = asyncio.create_task(self._replace())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _replace(self) -> None:
        replacement: WorkerProcess | None = None
        try:
            replacement = await self._spawn()
        except WorkerError:
            logger.exception("Cannot start a replacement worker; will retry on next execution")
        finally:
            self._idle.put_nowait(replacement)

    async def _drive(
        self, worker: WorkerProcess, request: ExecutionRequest, stop: asyncio.Event
    ) -> ExecutionOutcome:
        log_path = self._work_dir / f"execution-{request.id}-{next(self._numbers)}.log"
        started_at = datetime.now(UTC)
        error: ExecutionError | None = None
        if self._on_output is not None:
            self._following[request.id] = OutputFollower(log_path)
        try:
            status, reply = await self._exchange(worker, request, log_path, stop)
        except WorkerError as exc:
            await worker.kill_tree()
            status, reply, error = ExecutionStatus.FAILED, None, _error(exc)
        except BaseException:
            await worker.kill_tree()
            raise
        finally:
            self._following.pop(request.id, None)
            log, truncated = read_bounded_log(log_path)
            with contextlib.suppress(FileNotFoundError):
                log_path.unlink()
        return _outcome(
            request,
            status,
            started_at=started_at,
            reply=reply,
            worker=worker,
            error=error,
            log=log,
            log_truncated=truncated,
        )

    async def _follow_output(self, on_output: OutputCallback) -> None:
        """Pass new output of every running execution to ``on_output``, every interval.

        One loop for all executions: a task of its own per execution would cost more than
        most executions take.
        """
        while True:
            await asyncio.sleep(self._output_interval_seconds)
            for execution_id, follower in list(self._following.items()):
                if follower.exhausted:
                    continue
                try:
                    text = follower.read_new()
                except OSError as exc:
                    extra = {"execution": execution_id}
                    logger.debug("Cannot read live output: %s", exc, extra=extra)
                    continue
                if text:
                    on_output(execution_id, text)

    async def _exchange(
        self, worker: WorkerProcess, request: ExecutionRequest, log_path: Path, stop: asyncio.Event
    ) -> tuple[ExecutionStatus, Message | None]:
        if stop.is_set():
            return ExecutionStatus.CANCELLED, None
        await worker.send(_request_message(request, log_path))
        reply_task = asyncio.ensure_future(worker.receive())
        stop_task = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {reply_task, stop_task},
                timeout=request.timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stop_task.cancel()
        if reply_task in done:
            return _reply_status(reply_task.result(), request.id), reply_task.result()
        reply_task.cancel()
        status = ExecutionStatus.CANCELLED if stop.is_set() else ExecutionStatus.TIMED_OUT
        extra = {"execution": request.id, "task": request.task_id}
        logger.info("Killing worker %s: execution %s", worker.pid, status.value, extra=extra)
        await worker.kill_tree()
        return status, None


def _request_message(request: ExecutionRequest, log_path: Path) -> Message:
    return {
        "id": request.id,
        "plugin": request.plugin,
        "sha256": request.sha256,
        "path": str(request.path),
        "action": request.action,
        "args": request.args,
        "kwargs": request.kwargs,
        "log_path": str(log_path),
    }


def _reply_status(reply: Message | None, execution_id: int) -> ExecutionStatus:
    if reply is None:
        return ExecutionStatus.FAILED
    if reply.get("id") != execution_id:
        raise WorkerError(f"worker answered for execution {reply.get('id')}, not {execution_id}")
    return ExecutionStatus.parse(str(reply.get("status")))


def _outcome(
    request: ExecutionRequest,
    status: ExecutionStatus,
    *,
    started_at: datetime | None = None,
    reply: Message | None = None,
    worker: WorkerProcess | None = None,
    error: ExecutionError | None = None,
    log: str = "",
    log_truncated: bool = False,
) -> ExecutionOutcome:
    if reply is not None and reply.get("error"):
        error = ExecutionError(**reply["error"])
    elif error is None:
        error = _stop_error(status, request, worker)
    finished_at = datetime.now(UTC)
    return ExecutionOutcome(
        id=request.id,
        status=status,
        result=reply.get("result") if reply is not None else None,
        error=error,
        log=log,
        log_truncated=log_truncated,
        started_at=finished_at if started_at is None else started_at,
        finished_at=finished_at,
        worker_pid=worker.pid if worker is not None else None,
    )


def _stop_error(
    status: ExecutionStatus, request: ExecutionRequest, worker: WorkerProcess | None
) -> ExecutionError | None:
    if status is ExecutionStatus.TIMED_OUT:
        message = f"the action ran longer than its timeout of {request.timeout_seconds} seconds"
        return ExecutionError(type="TimeoutError", message=message)
    if status is ExecutionStatus.CANCELLED:
        return ExecutionError(type="Cancelled", message="the execution was cancelled")
    if status is ExecutionStatus.FAILED and worker is not None:
        code = worker.returncode
        killed = code is not None and code < 0
        how = f"was killed by signal {-(code or 0)}" if killed else f"exited with code {code}"
        return ExecutionError(type="WorkerDied", message=f"the worker process {how}")
    return None


def _error(exc: BaseException) -> ExecutionError:
    return ExecutionError(type=type(exc).__name__, message=str(exc))


class OutputFollower:
    """Reads what a capture file gained since the last read, as text, up to MAX_LOG_BYTES in all.

    An incremental decoder keeps a character split across two reads whole.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def exhausted(self) -> bool:
        """Whether the live limit is reached (the final report still carries head and tail)."""
        return self._offset >= MAX_LOG_BYTES

    def read_new(self) -> str:
        """The text written since the last call ("" when nothing new or no file yet)."""
        try:
            with self._path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read(MAX_LOG_BYTES - self._offset)
        except FileNotFoundError:
            return ""
        self._offset += len(data)
        return self._decoder.decode(data).replace("\x00", "\ufffd")


def read_bounded_log(path: Path, limit: int = MAX_LOG_BYTES) -> tuple[str, bool]:
    """Read a capture file, keeping its head and tail if it is larger than ``limit`` bytes.

    Returns:
        The text (at most ``limit`` characters, undecodable bytes replaced, NUL replaced so
        any database can store it) and whether it was truncated.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return "", False
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= limit:
            return _decode(handle.read(limit)), False
        half = (limit - _TRUNCATION_RESERVE) // 2
        head = handle.read(half)
        handle.seek(size - half)
        tail = handle.read(half)
    marker = f"\n[... {size - 2 * half} bytes of output truncated ...]\n"
    return _decode(head) + marker + _decode(tail), True


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
