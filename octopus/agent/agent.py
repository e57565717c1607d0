"""The agent process: enroll, heartbeat, long-poll for executions, run them in workers, report."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octopus.agent.backoff import Backoff
from octopus.agent.client import AgentClient, RequestRefused, ServerUnavailable
from octopus.agent.executor import Executor
from octopus.agent.facts import FactsCollector, local_ip
from octopus.agent.output import OutputStreamer
from octopus.agent.plugin_cache import PluginCache
from octopus.agent.prefetch import Prefetch
from octopus.agent.reports import ReportSender
from octopus.agent.runner import ExecutionRunner
from octopus.agent.slim import FIELDS, exec_slim
from octopus.agent.state import AgentState
from octopus.agent.worker_process import WorkerError
from octopus.errors import AuthError, Conflict, NotFound, OctopusError
from octopus.logs import setup_logging
from octopus.schemas.agents import (
    ClaimRequest,
    ClaimResponse,
    EnrollRequest,
    Heartbeat,
    HeartbeatAck,
)
from octopus.schemas.reports import ReleaseRequest

if TYPE_CHECKING:
    from octopus.config import AgentSettings

logger = logging.getLogger(__name__)

SLIM_OPT_OUT = "OCTOPUS_AGENT_NO_EXEC"
"""Set to 1 to run the agent inside the command's own process (debuggers, profilers)."""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_AUTH = 2
_MAX_CLAIM_SLOTS = 256
"""The most executions one claim may ask for (``ClaimRequest.slots``)."""
CLAIM_LEAD_SECONDS = 0.25
"""How long before an execution may start the agent takes it (``ClaimRequest.lead_seconds``):
the server fires scheduled runs a little ahead, and the agent starts each at its time."""
_EMPTY_CLAIM_PAUSE_SECONDS = 0.5
"""Pause after a claim that came back empty at once, so a server that does not hold the
long-poll cannot make the agent spin."""


class Agent:
    """One agent: separate tasks for heartbeats, claiming, running executions and reporting.

    Running each claimed execution is ``runner.ExecutionRunner``'s job; the agent enrolls,
    heartbeats, claims and decides when to drain or stop.
    """

    def __init__(
        self,
        *,
        server_url: str,
        name: str,
        state_dir: Path,
        join_token: str | None = None,
        labels: Mapping[str, str] | None = None,
        concurrency: int = 2,
        prefetch: int = 256,
        heartbeat_interval: float = 10.0,
        allow_shell: bool = False,
        claim_wait_seconds: float = 25.0,
        max_backoff_seconds: float = 10.0,
        handle_signals: bool = True,
    ) -> None:
        """Configure the agent; nothing happens until ``run``.

        Args:
            server_url: Where the server is, for example ``http://localhost:8000``.
            name: This agent's unique name.
            state_dir: Where the token, plugin cache and capture files are kept.
            join_token: Used to enroll when no token is saved in ``state_dir``.
            labels: Labels that tasks can select this agent by.
            concurrency: Executions run at once (one warm worker process each).
            prefetch: The most executions held beyond ``concurrency``, waiting for a worker,
                when recent executions were quick (see ``prefetch.Prefetch``); 0 disables.
            heartbeat_interval: Seconds between heartbeats (shortened to half the lease).
            allow_shell: Let the built-in shell plugin run commands.
            claim_wait_seconds: How long the server may hold a claim (long-poll).
            max_backoff_seconds: Longest pause between retries while the server is away.
            handle_signals: Drain on SIGTERM/SIGINT (only in the main thread).
        """
        self.name = name
        self._server_url = server_url
        self._join_token = join_token
        self._labels = dict(labels or {})
        self._concurrency = concurrency
        self._heartbeat_interval = heartbeat_interval
        self._interval = heartbeat_interval
        self._claim_wait_seconds = claim_wait_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._handle_signals = handle_signals
        self._state = AgentState(state_dir)
        self._client = AgentClient(server_url)
        self._plugins = PluginCache(self._state.plugins_dir)
        self._output = OutputStreamer(self._client)
        self._executor = Executor(
            size=concurrency,
            work_dir=self._state.work_dir,
            allow_shell=allow_shell,
            on_output=self._output.add,
        )
        self._reports = ReportSender(
            self._client,
            agent_name=name,
            on_auth_error=self._auth_failed,
            max_backoff_seconds=max_backoff_seconds,
        )
        self._prefetch = Prefetch(concurrency=concurrency, maximum=prefetch)
        self._facts = FactsCollector(concurrency=concurrency)
        self._draining = False
        self._exit_code = EXIT_OK
        self._server_up = True
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._runner = ExecutionRunner(
            executor=self._executor,
            output=self._output,
            plugins=self._plugins,
            fetch_plugin=self._client.download_plugin,
            reports=self._reports,
            prefetch=self._prefetch,
            release=self._release,
            max_backoff_seconds=max_backoff_seconds,
            on_slot_freed=self._slot_freed.set,
        )

    @property
    def free_slots(self) -> int:
        """How many workers are free (held executions beyond the workers wait for one)."""
        return max(0, self._concurrency - self._runner.held)

    @property
    def claimable(self) -> int:
        """How many more executions this agent may hold now: free workers plus claim-ahead."""
        capacity = self._concurrency + self._prefetch.allowed
        return min(_MAX_CLAIM_SLOTS, max(0, capacity - self._runner.held))

    def stop(self) -> None:
        """Drain: claim nothing more, finish and report running executions, then exit 0.

        A second call stops at once: running executions are killed, reports are dropped.
        """
        if self._stop.is_set():
            logger.warning("Stopping now without waiting for running executions")
            self._abort.set()
            return
        logger.info("Draining: %s execution(s) still running", self._runner.held)
        self._draining = True
        self._stop.set()
        self._slot_freed.set()

    async def run(self) -> int:
        """Run until stopped; return the process exit code (0 drained, 1 error, 2 auth)."""
        self._install_signal_handlers()
        try:
            self._state.ensure()
            token = await self._obtain_token()
            if token is None:
                return self._exit_code
            self._client.token = token
            self._plugins.pin(self._state.load_plugin_key())
            self._facts.ip = await asyncio.to_thread(local_ip, self._server_url)
            return await self._serve()
        except WorkerError as exc:
            logger.error("Cannot start worker processes: %s", exc)
            return EXIT_ERROR
        finally:
            self._remove_signal_handlers()
            await self._client.aclose()

    async def _serve(self) -> int:
        async with self._executor:
            logger.info(
                "Agent %s running with %s worker(s) against %s",
                self.name,
                self._concurrency,
                self._server_url,
            )
            heartbeats = asyncio.create_task(self._heartbeat_loop())
            claims = asyncio.create_task(self._claim_loop())
            for loop in (heartbeats, claims):
                loop.add_done_callback(self._loop_ended)
            await self._stop.wait()
            await _cancel(claims)
            if not self._abort.is_set():
                await self._send_heartbeat()  # tells the server we are draining
                await self._until_abort(self._drain())
            await _cancel(heartbeats)
            await self._abort_work()
            await self._output.close()
        logger.info("Agent %s stopped", self.name)
        return self._exit_code

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        logger.error("Agent loop crashed; stopping", exc_info=task.exception())
        self._exit_code = EXIT_ERROR
        self._draining = True
        self._stop.set()
        self._abort.set()

    async def _drain(self) -> None:
        await self._runner.wait_finished()
        await self._reports.wait_delivered()

    async def _until_abort(self, work: Coroutine[Any, Any, None]) -> None:
        job = asyncio.ensure_future(work)
        aborted = asyncio.create_task(self._abort.wait())
        await asyncio.wait({job, aborted}, return_when=asyncio.FIRST_COMPLETED)
        await _cancel(aborted)
        await _cancel(job)

    async def _abort_work(self) -> None:
        await self._runner.abort()
        await self._reports.abort()

    # Enrollment -----------------------------------------------------------------------------

    async def _obtain_token(self) -> str | None:
        token = self._state.load_token()
        if token is not None:
            logger.info("Using the saved agent token in %s", self._state.root)
            return token
        if not self._join_token:
            return self._give_up(
                EXIT_AUTH,
                "No saved token in %s and no join token: set OCTOPUS_JOIN_TOKEN "
                "or pass --join-token",
                self._state.root,
            )
        backoff = Backoff(cap_seconds=self._max_backoff_seconds)
        request = EnrollRequest(name=self.name, labels=self._labels)
        while not self._stop.is_set():
            try:
                enrolled = await self._client.enroll(self._join_token, request)
            except ServerUnavailable as exc:
                self._server_away(exc)
                await self._pause(backoff.next_delay())
                continue
            except AuthError:
                return self._give_up(EXIT_AUTH, "The server refused the join token")
            except Conflict:
                return self._give_up(
                    EXIT_AUTH,
                    "Agent name %s is already enrolled and no token is saved in %s",
                    self.name,
                    self._state.root,
                )
            except (RequestRefused, NotFound) as exc:
                return self._give_up(EXIT_AUTH, "Enrollment refused: %s", exc)
            self._state.save_token(enrolled.token)
            self._state.save_plugin_key(enrolled.plugin_public_key)
            self._heartbeat_interval = min(self._heartbeat_interval, enrolled.heartbeat_interval)
            self._interval = self._heartbeat_interval
            logger.info("Enrolled as %s; token saved in %s", enrolled.name, self._state.root)
            return enrolled.token
        return None

    def _give_up(self, code: int, message: str, *args: object) -> str | None:
        logger.error(message, *args)
        self._exit_code = code
        return None

    def _auth_failed(self, exc: AuthError) -> None:
        if self._exit_code != EXIT_AUTH:
            logger.error(
                "The server rejected the agent token (%s); stopping. Remove %s to enroll again",
                exc.message,
                self._state.token_path,
            )
        self._exit_code = EXIT_AUTH
        self._draining = True
        self._stop.set()
        self._abort.set()

    # Heartbeats ------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await self._send_heartbeat()
            await asyncio.sleep(self._interval)

    async def _send_heartbeat(self) -> None:
        facts = self._facts.collect(
            free_slots=0 if self._draining else self.free_slots,
            running=[*self._runner.held_ids, *self._reports.pending],
            plugin_versions=self._plugins.versions(),
        )
        heartbeat = Heartbeat(facts=facts, labels=self._labels, draining=self._draining)
        try:
            ack = await self._client.heartbeat(self.name, heartbeat)
        except ServerUnavailable as exc:
            self._server_away(exc)
        except AuthError as exc:
            self._auth_failed(exc)
        except (RequestRefused, NotFound) as exc:
            logger.error("Heartbeat refused: %s", exc)
        else:
            self._server_back()
            self._apply_ack(ack)

    def _apply_ack(self, ack: HeartbeatAck) -> None:
        for execution_id in ack.cancel:
            self._runner.cancel(execution_id)
        if ack.lease_seconds > 0:
            self._interval = min(self._heartbeat_interval, ack.lease_seconds / 2)
        try:
            self._plugins.forget(ack.plugins, keep=self._runner.plugins_in_use())
        except OSError as exc:
            logger.warning("Cannot clean the plugin cache: %s", exc)

    def _server_away(self, exc: OctopusError) -> None:
        if self._server_up:
            logger.warning("Server unreachable (%s); retrying with backoff", exc.message)
        self._server_up = False

    def _server_back(self) -> None:
        if not self._server_up:
            logger.info("Server reachable again")
        self._server_up = True

    # Claiming --------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        backoff = Backoff(cap_seconds=self._max_backoff_seconds)
        while not self._draining:
            began = time.monotonic()
            try:
                response = await self._claim_once()
            except ServerUnavailable as exc:
                self._server_away(exc)
                await self._pause(backoff.next_delay())
                continue
            except AuthError as exc:
                self._auth_failed(exc)
                return
            except (RequestRefused, NotFound) as exc:
                logger.error("Claim refused: %s", exc)
                await self._pause(backoff.next_delay())
                continue
            backoff.reset()
            if response is not None:
                if not (response.executions or response.cancel):
                    await self._pause(_EMPTY_CLAIM_PAUSE_SECONDS - (time.monotonic() - began))

    async def _release(self, execution_ids: Sequence[int]) -> set[int]:
        answer = await self._client.release(
            self.name, ReleaseRequest(executions=list(execution_ids))
        )
        return {result.id for result in answer.results}

    async def _claim_once(self) -> ClaimResponse | None:
        """One long-poll; None if it was dropped because a slot freed while it asked for none."""
        slots = self.claimable
        self._slot_freed.clear()
        request = ClaimRequest(
            slots=slots, wait_seconds=self._claim_wait_seconds, lead_seconds=CLAIM_LEAD_SECONDS
        )
        if slots > 0:
            return await self._claim_and_accept(request)
        # A claim for zero slots cannot lease anything, so dropping it loses nothing.
        claim = asyncio.create_task(self._claim_and_accept(request))
        freed = asyncio.create_task(self._slot_freed.wait())
        await asyncio.wait({claim, freed}, return_when=asyncio.FIRST_COMPLETED)
        await _cancel(freed)
        if claim.done():
            return claim.result()
        await _cancel(claim)
        return None

    async def _claim_and_accept(self, request: ClaimRequest) -> ClaimResponse:
        response = await self._client.claim(self.name, request)
        # Accepted as the answer is read: the runner hands its executions to idle workers at
        # once, before the next claim is built; a zero-slot claim, a task of its own, has its
        # cancellations applied here rather than a turn of the event loop later.
        self._server_back()
        self._accept(response)
        return response

    def _accept(self, response: ClaimResponse) -> None:
        for execution_id in response.cancel:
            self._runner.cancel(execution_id)
        for claimed in response.executions:
            self._runner.start(claimed)
        if response.executions:
            logger.debug(
                "Claimed %s execution(s); holding %s", len(response.executions), self._runner.held
            )

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)

    # Signals ---------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if not self._handle_signals:
            return
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signum, self.stop)

    def _remove_signal_handlers(self) -> None:
        if not self._handle_signals:
            return
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(signum)


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def run_agent(settings: AgentSettings) -> int:
    """Run an agent from settings until it stops; return its exit code (used by the CLI).

    On Linux and macOS the process first re-executes itself as the slim ``python -m
    octopus.agent`` (same pid), so the running agent carries none of the CLI's imports.
    """
    if os.name == "posix" and os.environ.get(SLIM_OPT_OUT) != "1":
        exec_slim(settings)
    return run_agent_with({name: getattr(settings, name) for name in FIELDS})


def run_agent_with(options: Mapping[str, Any]) -> int:
    """Run an agent from the plain settings values named in ``slim.FIELDS``."""
    log_file = options["log_file"]
    setup_logging(options["log_level"], Path(log_file) if log_file is not None else None)
    agent = Agent(
        server_url=options["server_url"],
        name=options["agent_name"],
        join_token=options["join_token"],
        labels=options["labels"],
        concurrency=options["concurrency"],
        prefetch=options["prefetch"],
        state_dir=Path(options["state_dir"]),
        heartbeat_interval=options["heartbeat_interval"],
        allow_shell=options["allow_shell"],
    )
    # What the agent imported and built at start lives as long as it does; frozen, a full
    # collection no longer walks it (~40,000 objects: 8 ms, in the middle of a dispatch).
    gc.freeze()
    logger.debug("Froze %s start-up objects out of garbage collection", gc.get_freeze_count())
    return asyncio.run(agent.run())
