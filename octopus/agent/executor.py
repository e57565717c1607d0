"""The executor: a pool of warm worker processes that run executions with timeouts and cancel."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import itertools
import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
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


class Withdrawn(Exception):
    """Raised by ``Executor.run`` for an execution taken back (``withdraw``) before any worker
    started it."""


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


@dataclass(slots=True, eq=False)
class _Job:
    """One execution in the executor: waiting for a worker, then running on one."""

    request: ExecutionRequest
    outcome: asyncio.Future[ExecutionOutcome]
    worker: WorkerProcess | None = None
    log_path: str | None = None
    started_at: datetime | None = None
    stopping: ExecutionStatus | None = None
    """Why its worker is being killed: cancelled or timed out."""
    broken: ExecutionError | None = None
    """What the worker sent that broke the protocol, if it did."""
    timer: asyncio.TimerHandle | None = None


class Executor:
    """Runs executions in ``size`` warm worker processes, one execution per worker at a time.

    Workers start once (``start``) and are reused; a worker killed for a timeout or a cancel,
    or one that died, is replaced in the background. Use as ``async with Executor(...)``.

    Everything between a request and its outcome happens in callbacks on the event loop (a
    reply hands the worker its next execution at once), with one future per execution: a
    task and a wait per execution cost more than a no-op action takes.
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
        # Capture file names are built as strings: pathlib's joins cost more per execution
        # than a no-op action takes.
        self._capture_prefix = f"{work_dir}{os.sep}execution-"
        self._env = worker_environment(
            os.environ if environ is None else environ, allow_shell=allow_shell
        )
        self._python = python
        self._start_timeout_seconds = start_timeout_seconds
        self._jobs: dict[int, _Job] = {}
        self._waiting: deque[_Job] = deque()
        self._idle: list[WorkerProcess] = []
        self._running: dict[WorkerProcess, _Job] = {}
        self._empty_slots = 0
        """Slots whose worker died and could not be replaced yet: the next execution retries."""
        self._workers: set[WorkerProcess] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._numbers = itertools.count(1)
        self._spares: list[str] = []
        """Empty capture files made ahead, one per worker at most."""
        self._kept: dict[WorkerProcess, str] = {}
        """An idle worker's last capture file, named again for its next execution: its worker
        found it empty and held open by no process once its execution ended."""
        self._making_spares = False
        self._on_output = on_output
        self._output_interval_seconds = output_interval_seconds
        self._following: dict[int, OutputFollower] = {}
        self._follower: asyncio.Task[None] | None = None
        self._closing = False

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
        # A worker that ended while the others were still starting was heard of already
        # (``on_gone`` dropped it and started a replacement): handed work, it would never
        # answer.
        self._idle += [worker for worker in results if worker in self._workers]
        if failures:
            await self.close()
            raise WorkerError(f"cannot start workers: {failures[0]}")
        if self._on_output is not None:
            self._follower = asyncio.create_task(self._follow_output(self._on_output))
        self._make_spares()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def running(self) -> tuple[int, ...]:
        """Ids of the executions started and not finished (running or waiting for a worker)."""
        return tuple(self._jobs)

    @property
    def waiting(self) -> int:
        """How many executions wait for a worker."""
        return len(self._waiting)

    def withdraw(self, count: int) -> list[int]:
        """Take back up to ``count`` of the executions waiting for a worker, newest first: no
        worker will start them, and their ``run`` raises ``Withdrawn``. Returns their ids."""
        taken: list[int] = []
        while self._waiting and len(taken) < count:
            job = self._waiting.pop()
            del self._jobs[job.request.id]
            job.outcome.set_exception(Withdrawn(job.request.id))
            taken.append(job.request.id)
        return taken

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """Pids of the live worker processes."""
        return tuple(worker.pid for worker in self._workers if worker.alive)

    def cancel(self, execution_id: int) -> bool:
        """Stop an execution: its worker's process tree is killed and it ends ``cancelled``.

        Returns:
            True if the execution was running here.
        """
        job = self._jobs.get(execution_id)
        if job is not None:
            self._stop(job, ExecutionStatus.CANCELLED)
        return job is not None

    async def run(self, request: ExecutionRequest) -> ExecutionOutcome:
        """Run one execution in a free worker and return how it ended (never raises for it).

        Waits for a free worker if all are busy; a cancel while it waits ends it ``cancelled``
        at once. A timeout or a cancel while it runs kills the worker's whole process tree; the
        outcome is then ``timed_out`` or ``cancelled``. Its ``started_at`` is when a worker
        took it (or when it ended, if none did).

        Raises:
            Withdrawn: ``withdraw`` took it back before a worker started it.
        """
        return await self.outcome_of(request.id, self.submit(request))

    def submit(self, request: ExecutionRequest) -> asyncio.Future[ExecutionOutcome]:
        """The first half of ``run``, without waiting: queue the execution, hand it to an idle
        worker at once if there is one, and return its outcome to await with ``outcome_of``."""
        if request.id in self._jobs:
            raise ValueError(f"execution {request.id} is already running")
        job = _Job(request, asyncio.get_running_loop().create_future())
        self._jobs[request.id] = job
        self._waiting.append(job)
        self._dispatch()
        return job.outcome

    async def outcome_of(
        self, execution_id: int, outcome: asyncio.Future[ExecutionOutcome]
    ) -> ExecutionOutcome:
        """The second half of ``run``: how a submitted execution ended; if the caller is
        cancelled while it waits, the execution is stopped without an outcome."""
        try:
            return await outcome
        except asyncio.CancelledError:
            job = self._jobs.get(execution_id)
            if job is not None and job.outcome is outcome:
                self._stop(job, ExecutionStatus.CANCELLED)
            raise

    async def close(self) -> None:
        """Stop all workers: close their input, wait briefly, then kill what is left; an
        execution still here ends ``cancelled``."""
        self._closing = True
        tasks = [*self._background, *([self._follower] if self._follower else [])]
        self._follower = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for job in list(self._jobs.values()):
            job.stopping = job.stopping or ExecutionStatus.CANCELLED
        while self._waiting:
            self._finish(self._waiting.popleft(), ExecutionStatus.CANCELLED)
        await asyncio.gather(*(worker.close() for worker in self._workers))
        self._workers.clear()
        for path in [*self._spares, *self._kept.values()]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._spares.clear()
        self._kept.clear()

    # The worker's side, called from the event loop by WorkerProcess.

    def on_message(self, worker: WorkerProcess, message: Message) -> None:
        """A reply: finish the worker's execution and hand it the next one."""
        job = self._running.get(worker)
        if job is None:
            self.on_broken(worker, f"worker {worker.pid} answered when asked nothing")
            return
        if job.stopping is not None:
            return  # being killed: the kill decides how it ended
        if message.get("id") != job.request.id:
            answered = message.get("id")
            self.on_broken(
                worker, f"worker answered for execution {answered}, not {job.request.id}"
            )
            return
        try:
            status = ExecutionStatus.parse(str(message.get("status")))
        except ValueError:
            self.on_broken(worker, f"worker {worker.pid} sent an unknown status")
            return
        del self._running[worker]
        self._finish(job, status, reply=message, worker=worker)
        self._idle.append(worker)
        self._dispatch()

    def on_broken(self, worker: WorkerProcess, reason: str) -> None:
        """The worker broke the protocol: kill it; its execution fails with ``reason``."""
        job = self._running.get(worker)
        if job is not None and job.stopping is None:
            job.broken = ExecutionError(type=WorkerError.__name__, message=reason)
            job.stopping = ExecutionStatus.FAILED
        self._in_background(worker.kill_tree())

    def on_gone(self, worker: WorkerProcess) -> None:
        """The worker exited: end its execution by why it was killed (or as failed), and start
        a replacement."""
        self._workers.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        kept = self._kept.pop(worker, None)
        if kept is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(kept)
        job = self._running.pop(worker, None)
        if job is not None:
            status = job.stopping or ExecutionStatus.FAILED
            if job.stopping is not None:
                extra = {"execution": job.request.id, "task": job.request.task_id}
                logger.info("Worker %s killed: execution %s", worker.pid, status.value, extra=extra)
            self._finish(job, status, worker=worker, error=job.broken)
        if not self._closing:
            self._in_background(self._replace())

    # Inside the pool.

    def _dispatch(self) -> None:
        """Give waiting executions to idle workers (and empty slots to fill), oldest first."""
        while self._waiting and (self._idle or self._empty_slots):
            job = self._waiting.popleft()
            if self._idle:
                self._start(self._idle.pop(), job)
            else:
                self._empty_slots -= 1
                self._in_background(self._start_on_new_worker(job))

    def _start(self, worker: WorkerProcess, job: _Job) -> None:
        request = job.request
        self._running[worker] = job
        job.worker = worker
        job.log_path = self._kept.pop(worker, None) or self._capture_path()
        job.started_at = datetime.now(UTC)
        if self._on_output is not None:
            self._following[request.id] = OutputFollower(job.log_path)
        if request.timeout_seconds is not None:
            job.timer = asyncio.get_running_loop().call_later(
                request.timeout_seconds, self._stop, job, ExecutionStatus.TIMED_OUT
            )
        worker.send(_request_message(request, job.log_path))

    def _capture_path(self) -> str:
        """The capture file of the next execution: one made ahead while the agent had time, or
        a new name the worker creates. The worker creating the file cost an execution's start
        0.12 ms after an idle pause here (opening one made ahead: 0.03 ms)."""
        if self._spares:
            return self._spares.pop()
        return f"{self._capture_prefix}{next(self._numbers)}.log"

    def _make_spares(self) -> None:
        """Make empty capture files ahead, up to one per worker (after an execution has ended,
        so never on the way of one to its worker). A fresh file after an execution that
        printed, or whose worker could not tell that no child of the action still holds its
        file, keeps late output of such a child out of the next execution's log."""
        self._making_spares = False
        while len(self._spares) < self.size and not self._closing:
            path = f"{self._capture_prefix}{next(self._numbers)}.log"
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except OSError:  # the work dir went away: workers create their own files
                return
            self._spares.append(path)

    def _discard_capture(self, path: str) -> None:
        """Remove a capture file no execution will write again, and make a spare in its place."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if not self._making_spares:
            self._making_spares = True
            asyncio.get_running_loop().call_soon(self._make_spares)

    async def _start_on_new_worker(self, job: _Job) -> None:
        """Fill an empty slot for ``job``; if no worker starts, the job fails with why."""
        try:
            worker = await self._spawn()
        except WorkerError as exc:
            self._empty_slots += 1
            self._finish(job, ExecutionStatus.FAILED, error=_error(exc))
            self._dispatch()  # the next waiting execution tries the slot again
            return
        if job.outcome.done() or job.stopping is not None:
            self._finish(job, ExecutionStatus.CANCELLED)
            self._idle.append(worker)
            self._dispatch()
            return
        self._start(worker, job)

    def _stop(self, job: _Job, status: ExecutionStatus) -> None:
        """End ``job`` as ``status``: at once if it waits, by killing its worker if it runs."""
        if job.worker is None:
            if job in self._waiting:
                self._waiting.remove(job)
                self._finish(job, ExecutionStatus.CANCELLED)
            else:  # its worker is still starting
                job.stopping = status
            return
        if job.stopping is None and self._running.get(job.worker) is job:
            job.stopping = status
            self._in_background(job.worker.kill_tree())

    def _finish(
        self,
        job: _Job,
        status: ExecutionStatus,
        *,
        reply: Message | None = None,
        worker: WorkerProcess | None = None,
        error: ExecutionError | None = None,
    ) -> None:
        if job.timer is not None:
            job.timer.cancel()
        self._jobs.pop(job.request.id, None)
        log, truncated = "", False
        if job.log_path is not None:
            self._following.pop(job.request.id, None)
            if reply is None or reply.get("output_bytes") != 0:
                log, truncated = read_bounded_log(job.log_path)
            if reply is not None and worker is not None and reply.get("capture_free") is True:
                self._kept[worker] = job.log_path
            else:
                self._discard_capture(job.log_path)
        if job.outcome.done():
            return
        job.outcome.set_result(
            _outcome(
                job.request,
                status,
                started_at=job.started_at,
                reply=reply,
                worker=worker,
                error=error,
                log=log,
                log_truncated=truncated,
            )
        )

    async def _spawn(self) -> WorkerProcess:
        worker = await WorkerProcess.spawn(
            self, env=self._env, python=self._python, timeout_seconds=self._start_timeout_seconds
        )
        self._workers.add(worker)
        return worker

    async def _replace(self) -> None:
        try:
            worker = await self._spawn()
        except WorkerError:
            logger.exception("Cannot start a replacement worker; will retry on next execution")
            self._empty_slots += 1
        else:
            self._idle.append(worker)
        self._dispatch()

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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


def _request_message(request: ExecutionRequest, log_path: str) -> Message:
    return {
        "id": request.id,
        "plugin": request.plugin,
        "sha256": request.sha256,
        "path": str(request.path),
        "action": request.action,
        "args": request.args,
        "kwargs": request.kwargs,
        "log_path": log_path,
    }


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

    def __init__(self, path: str | Path) -> None:
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
            with open(self._path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read(MAX_LOG_BYTES - self._offset)
        except FileNotFoundError:
            return ""
        self._offset += len(data)
        return self._decoder.decode(data).replace("\x00", "\ufffd")


def read_bounded_log(path: str | Path, limit: int = MAX_LOG_BYTES) -> tuple[str, bool]:
    """Read a capture file, keeping its head and tail if it is larger than ``limit`` bytes.

    Returns:
        The text (at most ``limit`` characters, undecodable bytes replaced, NUL replaced so
        any database can store it) and whether it was truncated.
    """
    try:
        handle = open(path, "rb")
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
