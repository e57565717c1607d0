"""Wire models for batched reports: many execution outcomes from one agent in one request."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from octopus.core.enums import ExecutionStatus
from octopus.schemas.agents import ExecutionReport
from octopus.schemas.common import Id, Inbound, Outbound

MAX_BATCHED_REPORTS = 1000


class BatchedReport(ExecutionReport):
    """The outcome of one execution, naming it (as the single report's path does)."""

    execution_id: Id


class ReportBatch(Inbound):
    """Outcomes of several executions the agent holds, recorded in one transaction."""

    reports: list[BatchedReport] = Field(min_length=1, max_length=MAX_BATCHED_REPORTS)


class ReportResult(Outbound):
    """What became of one report: the recorded status, or why it was refused."""

    id: int
    status: ExecutionStatus | None = None
    refused: Literal["fenced", "not_found"] | None = None
    reason: str | None = None


class ReportBatchAck(Outbound):
    """One result per report, in the order sent."""

    results: list[ReportResult]
