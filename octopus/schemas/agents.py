"""Wire models for agents: enrollment, heartbeats, claims, reports, and the admin view."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from octopus.core.enums import AgentStatus, ExecutionStatus
from octopus.schemas.common import AgentName, ErrorInfo, Id, Inbound, Labels, Outbound, Text

MAX_LOG_BYTES = 256 * 1024
"""The most of an execution's captured output that the server keeps."""


class AgentFactsIn(Inbound):
    """What an agent says about itself in every heartbeat."""

    hostname: Text = Field(default="", max_length=255)
    ip: Text = Field(default="", max_length=64)
    os_user: Text = Field(default="", max_length=128)
    pid: int = Field(default=0, ge=0, le=2**31)
    started_at: datetime | None = None
    concurrency: int = Field(default=1, ge=1, le=1024)
    free_slots: int = Field(default=0, ge=0, le=1024)
    running: list[Id] = Field(default_factory=list, max_length=1024)
    plugin_versions: dict[
        Annotated[str, Field(max_length=128)], Annotated[str, Field(max_length=64)]
    ] = Field(default_factory=dict, max_length=1000)
    cpu_percent: float = Field(default=0.0, ge=0, le=100_000)
    memory_percent: float = Field(default=0.0, ge=0, le=100)
    version: Text = Field(default="", max_length=64)


class EnrollRequest(Inbound):
    """A new agent presents the join token (as its bearer token) and its name."""

    name: AgentName
    labels: Labels = Field(default_factory=dict)


class EnrollResponse(Outbound):
    """The agent's own token: shown once, stored hashed on the server."""

    name: str
    token: str
    heartbeat_interval: float
    client_timeout: float
    plugin_public_key: str
    """The server's Ed25519 key (raw, base64): the agent pins it and refuses plugin versions
    it did not sign."""


class Heartbeat(Inbound):
    """Sent every heartbeat interval; renews the leases of the listed running executions."""

    facts: AgentFactsIn = Field(default_factory=AgentFactsIn)
    labels: Labels = Field(default_factory=dict)
    draining: bool = False


class HeartbeatAck(Outbound):
    """The server's answer: the agent's status, executions to stop, current plugin versions."""

    status: AgentStatus
    cancel: list[int]
    plugins: dict[str, str]
    lease_seconds: float


class ClaimRequest(Inbound):
    """Long-poll for work: returns as soon as there is some, or after ``wait_seconds``."""

    slots: int = Field(ge=0, le=256, description="Executions the agent can start now.")
    wait_seconds: float = Field(default=25.0, ge=0, le=60)
    lead_seconds: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="How long before an execution may start the agent accepts it: it then "
        "waits `start_in_seconds` itself. 0 (an agent that does not wait): only work that may "
        "start now.",
    )


class ClaimedExecution(Outbound):  # type: ignore[no-redef]
    """An execution now leased to the claiming agent."""

    id: int
    task_id: int
    run_id: int
    attempt: int
    plugin: str
    plugin_sha256: str
    action: str
    args: list[Any]
    kwargs: dict[str, Any]
    timeout_seconds: float | None
    lease_expires_at: datetime
    start_in_seconds: float = 0.0
    """How long the agent waits before starting it: a scheduled run handed over ahead of its
    fire time, to an agent that asked for work ``lead_seconds`` ahead."""


class ClaimResponse(Outbound):
    """Work for the agent and running executions it must stop."""

    executions: list[ClaimedExecution]
    cancel: list[int]


MAX_OUTPUT_CHUNK = 64 * 1024


class OutputChunk(Inbound):
    """New output of a running execution, sent while it runs so it can be followed live."""

    text: str = Field(min_length=1, max_length=MAX_OUTPUT_CHUNK)


ReportableStatus = Literal["succeeded", "failed", "timed_out", "cancelled"]


class ExecutionReport(Inbound):
    """The outcome of one execution, sent by the agent that holds its lease."""

    status: ReportableStatus
    result: Any = None
    error: ErrorInfo | None = None
    log: str = Field(default="", max_length=MAX_LOG_BYTES)
    log_truncated: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ReportAck(Outbound):
    """The recorded outcome."""

    id: int
    status: ExecutionStatus


class AgentRead(Outbound):
    """An agent as an operator sees it."""

    name: str
    status: AgentStatus
    labels: dict[str, str]
    hostname: str
    ip: str
    os_user: str
    pid: int
    version: str
    started_at: datetime | None
    last_heartbeat: datetime | None
    enrolled_at: datetime
    concurrency: int
    free_slots: int
    running: list[int]
    plugin_versions: dict[str, str]
    cpu_percent: float
    memory_percent: float
