"""The report sender: delivers execution outcomes in batches, retrying while the server is away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from octopus.agent.backoff import Backoff
from octopus.agent.client import AgentClient, RequestRefused, ServerUnavailable
from octopus.agent.executor import ExecutionOutcome
from octopus.errors import AuthError, Fenced, NotFound, OctopusError
from octopus.schemas.agents import ExecutionReport
from octopus.schemas.common import ErrorInfo
from octopus.schemas.reports import MAX_BATCHED_REPORTS, ReportBatchAck

logger = logging.getLogger(__name__)

MAX_BATCH_BYTES = 512 * 1024
"""Half the server's default body limit (``OCTOPUS_MAX_BODY_BYTES``, 1 MiB), so a batch is
never near it; a single report larger than this is sent alone."""


def report_of(outcome: ExecutionOutcome) -> ExecutionReport:
    """Turn an executor outcome into the wire report."""
    error = outcome.error
    return ExecutionReport(
        status=outcome.status.value,  # the Literal checks it
        result=outcome.result,
        error=None
        if error is None
        else ErrorInfo(type=error.type, message=error.message, traceback=error.traceback),
        log=outcome.log,
        log_truncated=outcome.log_truncated,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
    )


@dataclass(frozen=True, slots=True)
class _Pending:
    report: ExecutionReport
    encoded: bytes
    """The report as a ``BatchedReport`` in JSON, encoded once on submit."""


class ReportSender:
    """Delivers reports through one loop: all pending reports in one request, one at a time.

    A report submitted while no request is in flight goes at once, alone; those submitted
    while one is in flight go together in the next, so a busy agent batches by itself and an
    idle one adds no delay. A batch holds at most 1,000 reports and ``MAX_BATCH_BYTES``.
    While the server is away the batch is retried with backoff (with newer reports joining
    it up to those bounds). A report the server refuses as fenced (the attempt lost its lease)
    or unknown is logged and dropped, never retried. A batch refused as a whole (422, 413, or
    a server without the batch route) is sent again one report at a time, where a report
    refused as malformed or too large is replaced once by a small ``failed`` report saying
    why, so one bad report cannot block the others nor hang until its lease expires.
    """

    def __init__(
        self,
        client: AgentClient,
        *,
        agent_name: str,
        on_auth_error: Callable[[AuthError], None],
        max_backoff_seconds: float = 10.0,
    ) -> None:
        """Send through ``client`` as ``agent_name``; call ``on_auth_error`` if the server
        rejects the token."""
        self._client = client
        self._agent_name = agent_name
        self._on_auth_error = on_auth_error
        self._max_backoff_seconds = max_backoff_seconds
        self._pending: dict[int, _Pending] = {}
        self._sender: asyncio.Task[None] | None = None

    @property
    def pending(self) -> tuple[int, ...]:
        """Ids of the executions whose report is not delivered yet."""
        return tuple(self._pending)

    def submit(self, execution_id: int, report: ExecutionReport) -> None:
        """Queue a report for delivery in the background."""
        self._pending[execution_id] = _Pending(report, batched_json(execution_id, report))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_pending())
            self._sender.add_done_callback(_log_crash)

    async def wait_delivered(self) -> None:
        """Wait until every submitted report is delivered or dropped."""
        while self._sender is not None and not self._sender.done():
            await asyncio.wait({self._sender})

    async def abort(self) -> None:
        """Give up on undelivered reports (the agent is stopping for good)."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
        if self._pending:
            logger.warning("Stopping with %s undelivered report(s)", len(self._pending))
        self._pending.clear()

    async def _send_pending(self) -> None:
        backoff = Backoff(cap_seconds=self._max_backoff_seconds)
        while self._pending:
            if await self._send_batch(self._next_batch()):
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next_delay())

    def _next_batch(self) -> list[tuple[int, _Pending]]:
        batch: list[tuple[int, _Pending]] = []
        size = 0
        for execution_id, item in self._pending.items():
            if batch and (
                len(batch) == MAX_BATCHED_REPORTS or size + len(item.encoded) > MAX_BATCH_BYTES
            ):
                break
            batch.append((execution_id, item))
            size += len(item.encoded) + 1
        return batch

    async def _send_batch(self, batch: list[tuple[int, _Pending]]) -> bool:
        """Deliver one batch; False when it must be sent again after a pause."""
        encoded = [item.encoded for _, item in batch]
        try:
            ack = await self._client.report_many(self._agent_name, encoded)
        except ServerUnavailable as exc:
            logger.debug("%s report(s) not delivered (%s); will retry", len(batch), exc)
            return False
        except AuthError as exc:
            self._on_auth_error(exc)  # the agent stops and aborts what is pending
            return False
        except OctopusError as exc:
            logger.warning(
                "A batch of %s report(s) was refused (%s); sending them one by one", len(batch), exc
            )
            for execution_id, item in batch:
                await self._deliver_alone(execution_id, item.report)
                self._pending.pop(execution_id, None)
            return True
        return self._settle(batch, ack)

    def _settle(self, batch: list[tuple[int, _Pending]], ack: ReportBatchAck) -> bool:
        """Drop what the server answered for; False if it left some out (they stay pending)."""
        results = {result.id: result for result in ack.results}
        answered = True
        for execution_id, _ in batch:
            extra = {"execution": execution_id}
            result = results.get(execution_id)
            if result is None:
                logger.warning(
                    "The server did not answer for a report; sending it again", extra=extra
                )
                answered = False
                continue
            del self._pending[execution_id]
            if result.refused is None:
                logger.debug("Reported %s", result.status, extra=extra)
            elif result.refused == "fenced":
                logger.warning("Report refused: the execution lost its lease; dropped", extra=extra)
            else:
                logger.warning(
                    "Report refused: the server does not know this execution (%s); dropped",
                    result.reason,
                    extra=extra,
                )
        return answered

    async def _deliver_alone(self, execution_id: int, report: ExecutionReport) -> None:
        backoff = Backoff(cap_seconds=self._max_backoff_seconds)
        extra = {"execution": execution_id}
        replaced = False
        while True:
            try:
                ack = await self._client.report(execution_id, report)
            except ServerUnavailable as exc:
                delay = backoff.next_delay()
                logger.debug("Report not delivered (%s); retry in %.1fs", exc, delay, extra=extra)
                await asyncio.sleep(delay)
                continue
            except Fenced:
                logger.warning("Report refused: the execution lost its lease; dropped", extra=extra)
            except NotFound:
                logger.warning(
                    "Report refused: the server does not know this execution", extra=extra
                )
            except AuthError as exc:
                self._on_auth_error(exc)
            except RequestRefused as exc:
                if replaced:
                    logger.error("Report refused (%s); dropped", exc, extra=extra)
                    return
                logger.error("Report refused (%s); sending a failure instead", exc, extra=extra)
                report, replaced = _refused_report(report, exc), True
                continue
            else:
                logger.debug("Reported %s", ack.status.value, extra=extra)
            return


def batched_json(execution_id: int, report: ExecutionReport) -> bytes:
    """A ``BatchedReport`` as JSON: the report's own JSON (it was validated when made) with
    the execution's id spliced in first; building a second model per report cost most of
    the encoding."""
    return b'{"execution_id":%d,%s' % (execution_id, report.model_dump_json().encode()[1:])


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("The report sender crashed", exc_info=task.exception())


def _refused_report(original: ExecutionReport, exc: RequestRefused) -> ExecutionReport:
    return ExecutionReport(
        status="failed",
        error=ErrorInfo(type="ReportRefused", message=f"the server refused the report: {exc}"),
        log=original.log[-4096:],
        log_truncated=True,
        started_at=original.started_at,
        finished_at=original.finished_at,
    )
