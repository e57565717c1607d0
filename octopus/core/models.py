"""Domain records: frozen dataclasses that the store returns and the rest of Octopus reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from octopus.core.enums import (
    AgentStatus,
    ExecutionStatus,
    MissedPolicy,
    OnLost,
    OverlapPolicy,
    Ownership,
    RunStatus,
    TaskStatus,
    TaskType,
)

JSON = Any
"""A value that round-trips through JSON: None, bool, int, float, str, list or dict of those."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec:
    """What a caller asks for: everything needed to create a task, already validated."""

    name: str
    plugin: str
    action: str
    args: list[JSON] = field(default_factory=list)
    kwargs: dict[str, JSON] = field(default_factory=dict)
    type: TaskType = TaskType.ADHOC
    ownership: Ownership = Ownership.ANYONE
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None
    max_retries: int = 0
    retry_backoff_seconds: float = 1.0
    on_lost: OnLost = OnLost.RETRY
    run_at: datetime | None = None
    interval_seconds: float | None = None
    start_at: datetime | None = None
    cron: str | None = None
    timezone: str = "UTC"
    end_at: datetime | None = None
    max_runs: int | None = None
    jitter_seconds: float = 0.0
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP
    missed_policy: MissedPolicy = MissedPolicy.RUN_ONCE


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """A stored task, with the scheduler's bookkeeping.

    ``run_count`` counts the runs its schedule fired (not skipped, missed or "run now" ones);
    ``waiting_run_id`` is the run that ``queue_one`` holds back until the previous one ends.
    """

    id: int
    spec: TaskSpec
    status: TaskStatus
    last_run_status: RunStatus | None
    next_run_at: datetime | None
    created_at: datetime
    updated_at: datetime
    run_count: int = 0
    last_fire_time: datetime | None = None
    waiting_run_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One firing of a task."""

    id: int
    task_id: int
    fire_time: datetime
    status: RunStatus
    reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionError:
    """Why an execution did not succeed."""

    type: str
    message: str
    traceback: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One agent's attempt at one run; ``agent`` is None while ``anyone`` work is unassigned."""

    id: int
    run_id: int
    task_id: int
    ownership: Ownership
    agent: str | None
    attempt: int
    retry_of: int | None
    status: ExecutionStatus
    not_before: datetime
    lease_expires_at: datetime | None
    plugin_sha256: str | None
    result: JSON
    error: ExecutionError | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentFacts:
    """What an agent says about itself in each heartbeat."""

    hostname: str = ""
    ip: str = ""
    os_user: str = ""
    pid: int = 0
    started_at: datetime | None = None
    concurrency: int = 1
    free_slots: int = 0
    running: tuple[int, ...] = ()
    plugin_versions: dict[str, str] = field(default_factory=dict)
    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """An enrolled agent."""

    id: int
    name: str
    status: AgentStatus
    labels: dict[str, str]
    facts: AgentFacts
    last_heartbeat: datetime | None
    enrolled_at: datetime
    revoked: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamSpec:
    """One parameter of an action, as written in its source."""

    name: str
    kind: str
    annotation: str | None = None
    default: str | None = None
    required: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionSpec:
    """One public function of a plugin."""

    name: str
    params: tuple[ParamSpec, ...]
    returns: str | None = None
    doc: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Plugin:
    """One plugin version known to the server."""

    name: str
    sha256: str
    actions: tuple[ActionSpec, ...]
    size: int
    updated_at: datetime
    version: int = 1
    """Raised by the server whenever the file changes; agents never go back to a lower one."""
    signature: str | None = None
    """The server's Ed25519 signature of (name, version, sha256), base64."""
