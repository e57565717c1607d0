"""The report sender: delivers execution outcomes, retrying while the server is away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from octopus.agent.backoff import Backoff
from octopus.agent.client import AgentClient, RequestRefused, ServerUnavailable
from octopus.agent.executor import ExecutionOutcome
from octopus.errors import AuthError, Fenced, NotFound
from octopus.schemas.agents import ExecutionReport
from octopus.schemas.tasks import ErrorInfo

logger = logging.getLogger(__name__)


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


class ReportSender:
    """One delivery task per report; each retries with backoff until accepted or refused.

    A fenced report (409: the attempt lost its lease) is logged and dropped, never retried.
    A report the server refuses as malformed or too large is replaced once by a small
    ``failed`` report saying why, so the execution does not hang until its lease expires.
    """

    def __init__(
        self,
        client: AgentClient,
        *,
        on_auth_error: Callable[[AuthError], None],
        max_backoff_seconds: float = 10.0,
    ) -> None:
        """Send through ``client``; call ``on_auth_error`` if the server rejects the token."""
        self._client = client
        self._on_auth_error = on_auth_error
        self._max_backoff_seconds = max_backoff_seconds
        self._tasks: dict[int, asyncio.Task[None]] = {}

    @property
    def pending(self) -> tuple[int, ...]:
        """Ids of the executions whose report is not delivered yet."""
        return tuple(self._tasks)

    def submit(self, execution_id: int, report: ExecutionReport) -> None:
        """Start delivering a report in the background."""
        task = asyncio.create_task(self._deliver(execution_id, report))
        self._tasks[execution_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(execution_id, None))

    async def wait_delivered(self) -> None:
        """Wait until every submitted report is delivered or dropped."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def abort(self) -> None:
        """Give up on undelivered reports (the agent is stopping for good)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if tasks:
            logger.warning("Stopping with %s undelivered report(s)", len(tasks))

    async def _deliver(self, execution_id: int, report: ExecutionReport) -> None:
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
                logger.info("Reported %s", ack.status.value, extra=extra)
            return


def _refused_report(original: ExecutionReport, exc: RequestRefused) -> ExecutionReport:
    return ExecutionReport(
        status="failed",
        error=ErrorInfo(type="ReportRefused", message=f"the server refused the report: {exc}"),
        log=original.log[-4096:],
        log_truncated=True,
        started_at=original.started_at,
        finished_at=original.finished_at,
    )
