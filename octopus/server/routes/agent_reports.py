"""Batched reports (an agent records many execution outcomes in one request and transaction) and
the release of executions an agent claimed ahead and never started."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from octopus.core.enums import ExecutionStatus
from octopus.core.models import ExecutionError
from octopus.schemas.agents import ExecutionReport
from octopus.schemas.reports import (
    ReleaseAck,
    ReleaseRequest,
    ReportBatch,
    ReportBatchAck,
    ReportResult,
)
from octopus.server.auth import AgentIdentity, State
from octopus.server.clock import utcnow
from octopus.server.short_writes import store_write
from octopus.server.state import ServerState
from octopus.store.base import Finished, Outcome

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["agent protocol"])

REPORTS_PATH = "/agents/{name}/reports"
REPORTS_ROUTE = router.prefix + REPORTS_PATH
"""The batched reports route's template, the label of its request metrics."""
RELEASE_PATH = "/agents/{name}/release"
RELEASE_ROUTE = router.prefix + RELEASE_PATH
"""The release route's template, the label of its request metrics."""


def outcome_of(report: ExecutionReport) -> Outcome:
    """The store's Outcome for a wire report."""
    return Outcome(
        status=ExecutionStatus(report.status),
        result=report.result,
        error=ExecutionError(**report.error.model_dump()) if report.error else None,
        log=report.log,
        log_truncated=report.log_truncated,
        started_at=report.started_at,
        finished_at=report.finished_at,
    )


def _result(finished: Finished, what: str = "a batched report") -> ReportResult:
    if finished.status is not None:
        return ReportResult(id=finished.execution_id, status=finished.status)
    logger.info(
        "Refused %s (%s)",
        what,
        finished.refusal,
        extra={"execution": finished.execution_id},
    )
    return ReportResult(id=finished.execution_id, refused=finished.refusal, reason=finished.reason)


@router.post(REPORTS_PATH)
async def report_many(body: ReportBatch, agent: AgentIdentity, state: State) -> ReportBatchAck:
    """Record the outcomes of up to 1,000 executions this agent holds, in one transaction.

    Each report is fenced on its own: one for an execution the agent does not hold while it
    runs is answered `refused: "fenced"` (or `"not_found"`) and changes nothing, and the
    others are recorded all the same. The answer has one result per report, in order. Agents
    should send what finished since their last report, so a busy agent pays one request for
    many outcomes.
    """
    return await answer_reports(state, agent.name, body)


async def answer_reports(state: ServerState, name: str, body: ReportBatch) -> ReportBatchAck:
    """Record agent ``name``'s batch of reports; also the whole work of ``server.fast_lane``."""
    reports = [(report.execution_id, outcome_of(report)) for report in body.reports]
    finished, wake = await store_write(
        state.store, len(reports), state.store.finish_executions, name, reports, now=utcnow()
    )
    state.notifier.wake(wake)
    return ReportBatchAck(results=[_result(item) for item in finished])


@router.post(RELEASE_PATH)
async def release(body: ReleaseRequest, agent: AgentIdentity, state: State) -> ReleaseAck:
    """Hand back up to 1,000 executions this agent claimed ahead and has not started, so
    another agent can take them at once (an agent does this when it finds it holds more work
    than it can start soon).

    Each goes back to `queued` with the same attempt number; an `anyone` execution is
    unassigned, one assigned to this agent stays assigned. A run none of whose executions
    has started is `pending` again, and so is its one-shot task. An execution already marked
    for stopping ends `cancelled` instead. Each is fenced on its own, as a batched report is:
    one this agent does not hold while it runs is answered `refused: "fenced"` (or
    `"not_found"`) and left as it is. One result per execution, in order. The agent's waiting
    claims answer at once with what they hold, so it claims again with its current slots
    rather than a claim sent earlier taking the work back.
    """
    finished, wake = await store_write(
        state.store,
        len(body.executions),
        state.store.release_executions,
        agent.name,
        body.executions,
        now=utcnow(),
    )
    state.notifier.answer_now(agent.name)
    state.notifier.wake(wake)
    released = sum(1 for item in finished if item.status is ExecutionStatus.QUEUED)
    logger.info("Released %s execution(s)", released, extra={"agent": agent.name})
    return ReleaseAck(results=[_result(item, "a release") for item in finished])
