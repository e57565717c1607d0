"""Running claimed executions: fetch the plugin, hand the execution to a worker, queue its report.

The agent claims executions and decides when to stop; this module owns what happens to each
execution between the claim and the report, so the agent's claim and heartbeat logic never
touches a single execution's life.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from octopus.agent.backoff import Backoff
from octopus.agent.client import ServerUnavailable
from octopus.agent.executor import ExecutionOutcome, ExecutionRequest, Executor, Withdrawn
from octopus.agent.output import OutputStreamer
from octopus.agent.plugin_cache import Fetch, PluginCache
from octopus.agent.prefetch import Prefetch
from octopus.agent.reports import ReportSender, report_of
from octopus.core.enums import ExecutionStatus
from octopus.core.models import ExecutionError
from octopus.errors import OctopusError
from octopus.schemas.agents import ClaimedExecution

logger = logging.getLogger(__name__)

_DOWNLOAD_ATTEMPTS = 5
_RELEASE_ATTEMPTS = 5

Release = Callable[[Sequence[int]], Awaitable[set[int]]]
"""Hands executions back to the server; returns the ids it answered for (released or not)."""


class _HandedBack(Exception):
    """The server took back an execution this agent claimed ahead: it ends here unreported."""


class ExecutionRunner:
    """Runs each claimed execution in its own task, from plugin download to queued report.

    It holds every claimed execution until its report is queued, including those claimed
    ahead that still wait for a worker, so the agent can count what it holds and cancel any
    of them, whether it is running or not.
    """

    def __init__(
        self,
        *,
        executor: Executor,
        output: OutputStreamer,
        plugins: PluginCache,
        fetch_plugin: Fetch,
        reports: ReportSender,
        prefetch: Prefetch,
        release: Release,
        max_backoff_seconds: float,
        on_slot_freed: Callable[[], None],
    ) -> None:
        """Wire the runner to the agent's collaborators; nothing runs until ``start``.

        Args:
            executor: The worker pool that runs executions (the agent opens and closes it).
            output: Streams live output; the runner forgets an execution's once it ends.
            plugins: Where plugin sources are cached and verified.
            fetch_plugin: Downloads a plugin the cache does not hold.
            reports: Delivers each execution's report to the server.
            prefetch: Learns from how long executions take how far ahead to claim.
            release: Hands back executions claimed ahead that this agent will not start soon.
            max_backoff_seconds: Longest pause between plugin download or release retries.
            on_slot_freed: Called when an execution ends, so a waiting claim can ask for more.
        """
        self._executor = executor
        self._output = output
        self._plugins = plugins
        self._fetch_plugin = fetch_plugin
        self._reports = reports
        self._prefetch = prefetch
        self._release = release
        self._max_backoff_seconds = max_backoff_seconds
        self._on_slot_freed = on_slot_freed
        self._held: dict[int, ClaimedExecution] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancel_before_start: set[int] = set()
        self._releasing: dict[int, asyncio.Future[bool]] = {}
        self._hand_back: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        """How many claimed executions are running or waiting for a worker."""
        return len(self._held)

    @property
    def held_ids(self) -> list[int]:
        """The ids of held executions in claim order (heartbeats tell the server about them)."""
        return list(self._held)

    def plugins_in_use(self) -> set[str]:
        """The plugin hashes held executions need, which the plugin cache must not forget."""
        return {claimed.plugin_sha256 for claimed in self._held.values()}

    def start(self, claimed: ClaimedExecution) -> None:
        """Run a claimed execution in its own task; an execution already held is ignored."""
        if claimed.id in self._held:
            return
        self._held[claimed.id] = claimed
        logger.debug(
            "Starting %s.%s",
            claimed.plugin,
            claimed.action,
            extra={"execution": claimed.id, "task": claimed.task_id},
        )
        starts_at = asyncio.get_running_loop().time() + claimed.start_in_seconds
        task = asyncio.create_task(self._run_one(claimed, starts_at, self._submit_now(claimed)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self, execution_id: int) -> None:
        """Stop a held execution; one still fetching its plugin or waiting for its start time
        ends before it reaches a worker."""
        if execution_id not in self._held:
            return
        logger.info("Cancelling", extra={"execution": execution_id})
        if not self._executor.cancel(execution_id):
            self._cancel_before_start.add(execution_id)

    async def wait_finished(self) -> None:
        """Wait until every held execution has ended and queued its report (for draining)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def abort(self) -> None:
        """Kill every held execution at once; their reports are not queued."""
        if self._hand_back is not None:
            self._hand_back.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _submit_now(self, claimed: ClaimedExecution) -> _Submitted | None:
        """Submit work that may start now, of a plugin already verified here, to the executor
        at once: from its own task it reached a worker a turn of the event loop later (after
        every other execution of the claim was accepted). None for anything else."""
        path = self._plugins.ready(claimed.plugin, claimed.plugin_sha256)
        if path is None or claimed.start_in_seconds > 0:
            return None
        return self._submit(_request(claimed, path))

    def _submit(self, request: ExecutionRequest) -> _Submitted:
        return _Submitted(request, self._executor.submit(request))

    async def _run_one(
        self, claimed: ClaimedExecution, starts_at: float, submitted: _Submitted | None
    ) -> None:
        outcome: ExecutionOutcome | None = None
        try:
            outcome = await self._execute(claimed, starts_at, submitted)
        except _HandedBack:
            logger.debug("Handed back", extra={"execution": claimed.id, "task": claimed.task_id})
        finally:
            self._output.forget(claimed.id)
            del self._held[claimed.id]
            self._cancel_before_start.discard(claimed.id)
            self._on_slot_freed()
        if outcome is None:
            return
        if outcome.worker_pid is not None:
            self._prefetch.record((outcome.finished_at - outcome.started_at).total_seconds())
            self._hand_back_surplus()
        logger.info(
            "Execution %s",
            outcome.status.value,
            extra={"execution": claimed.id, "task": claimed.task_id},
        )
        self._reports.submit(claimed.id, report_of(outcome))

    async def _execute(
        self, claimed: ClaimedExecution, starts_at: float, submitted: _Submitted | None
    ) -> ExecutionOutcome:
        """Fetch the plugin, wait for the start time (``starts_at``, loop time), then run
        (unless ``submitted`` already)."""
        if submitted is None:
            try:
                path = await self._plugin_path(claimed)
            except (OctopusError, OSError) as exc:
                message = f"plugin {claimed.plugin} is not available here: {exc}"
                return _ended(claimed, ExecutionStatus.FAILED, "PluginError", message)
            early = starts_at - asyncio.get_running_loop().time()
            if early > 0:
                await asyncio.sleep(early)
            if claimed.id in self._cancel_before_start:
                return _cancelled(claimed)
            submitted = self._submit(_request(claimed, path))
        while True:
            try:
                return await self._executor.outcome_of(claimed.id, submitted.outcome)
            except Withdrawn:
                if await self._releasing.pop(claimed.id):
                    raise _HandedBack from None
            # The server was not told, so it is still leased here: run it after all.
            if claimed.id in self._cancel_before_start:
                return _cancelled(claimed)
            submitted = self._submit(submitted.request)

    def _hand_back_surplus(self) -> None:
        """Hand back the newest waiting executions when more wait than claim-ahead now allows.

        Claim-ahead is sized on recent durations; once executions turn slower, what was
        claimed ahead would wait while other agents may idle. The margin (twice what is
        allowed) keeps small swings of the mean from handing work back and forth.
        """
        if self._hand_back is not None:
            return
        allowed = self._prefetch.allowed
        waiting = self._executor.waiting
        if waiting <= 2 * allowed:
            return
        loop = asyncio.get_running_loop()
        taken = {i: loop.create_future() for i in self._executor.withdraw(waiting - allowed)}
        self._releasing.update(taken)
        self._hand_back = asyncio.create_task(self._send_back(taken))

    async def _send_back(self, taken: dict[int, asyncio.Future[bool]]) -> None:
        """Tell the server, retrying while it is away; what it did not answer for runs here."""
        answered: set[int] = set()
        backoff = Backoff(cap_seconds=self._max_backoff_seconds)
        try:
            for attempt in range(1, _RELEASE_ATTEMPTS + 1):
                try:
                    answered = await self._release(list(taken))
                except ServerUnavailable as exc:
                    logger.warning("Handing back %s execution(s) failed: %s", len(taken), exc)
                    if attempt < _RELEASE_ATTEMPTS:
                        await asyncio.sleep(backoff.next_delay())
                except OctopusError as exc:  # refused: no use asking again
                    logger.warning("Handing back %s execution(s) refused: %s", len(taken), exc)
                    break
                else:
                    logger.info("Handed back %s execution(s) claimed ahead", len(answered))
                    break
        finally:
            for execution_id, released in taken.items():
                released.set_result(execution_id in answered)
            self._hand_back = None

    async def _plugin_path(self, claimed: ClaimedExecution) -> Path:
        """The cached plugin file, retrying a download while the server is away (the last
        attempt's error ends the execution)."""
        backoff = Backoff(cap_seconds=self._max_backoff_seconds)
        for _ in range(_DOWNLOAD_ATTEMPTS - 1):
            try:
                return await self._plugins.ensure(
                    claimed.plugin, claimed.plugin_sha256, self._fetch_plugin
                )
            except ServerUnavailable as exc:
                logger.warning("Plugin download failed: %s", exc, extra={"execution": claimed.id})
                await asyncio.sleep(backoff.next_delay())
        return await self._plugins.ensure(claimed.plugin, claimed.plugin_sha256, self._fetch_plugin)


@dataclass(frozen=True, slots=True)
class _Submitted:
    """An execution handed to the executor, and its outcome to come."""

    request: ExecutionRequest
    outcome: asyncio.Future[ExecutionOutcome]


def _request(claimed: ClaimedExecution, path: Path) -> ExecutionRequest:
    return ExecutionRequest(
        id=claimed.id,
        task_id=claimed.task_id,
        plugin=claimed.plugin,
        sha256=claimed.plugin_sha256,
        path=path,
        action=claimed.action,
        args=claimed.args,
        kwargs=claimed.kwargs,
        timeout_seconds=claimed.timeout_seconds,
    )


def _cancelled(claimed: ClaimedExecution) -> ExecutionOutcome:
    return _ended(claimed, ExecutionStatus.CANCELLED, "Cancelled", "the execution was cancelled")


def _ended(
    claimed: ClaimedExecution, status: ExecutionStatus, kind: str, message: str
) -> ExecutionOutcome:
    """The outcome of an execution that ended before any worker took it."""
    now = datetime.now(UTC)
    return ExecutionOutcome(
        id=claimed.id,
        status=status,
        error=ExecutionError(type=kind, message=message),
        started_at=now,
        finished_at=now,
    )
