"""Wire models for batched reports (many execution outcomes from one agent in one request) and
for handing back executions claimed ahead and never started."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from octopus.core.enums import ExecutionStatus
from octopus.schemas.agents import ExecutionReport
from octopus.schemas.common import Id, Inbound, Outbound

MAX_BATCHED_REPORTS = 1000
MAX_RELEASED = 1000


class BatchedReport(ExecutionReport):
    """The outcome of one execution, naming it (as the single report's path does)."""

    execution_id: Id


class ReportBatch(Inbound):
    """Outcomes of several executions the agent holds, recorded in one transaction."""

    reports: list[BatchedReport] = Field(min_length=1, max_length=MAX_BATCHED_REPORTS)


class ReleaseRequest(Inbound):
    """Executions the agent claimed ahead and will not start: queue them again for others."""

    executions: list[Id] = Field(min_length=1, max_length=MAX_RELEASED)

    @field_validator("executions")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        if len(set(ids)) != len(ids):
            raise ValueError("execution ids must be distinct")
        return ids


class ReportResult(Outbound):
    """What became of one report (or release): the recorded status, or why it was refused."""

    id: int
    status: ExecutionStatus | None = None
    refused: Literal["fenced", "not_found"] | None = None
    reason: str | None = None


class ReportBatchAck(Outbound):
    """One result per report, in the order sent."""

    results: list[ReportResult]


class ReleaseAck(Outbound):
    """One result per execution, in the order sent: ``queued`` again (``cancelled`` for one
    marked for stopping), or refused."""

    results: list[ReportResult]
