"""Wire models for tasks, runs and executions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator, model_validator

from octopus.core.enums import (
    ExecutionStatus,
    MissedPolicy,
    OnLost,
    OverlapPolicy,
    Ownership,
    RunStatus,
    TaskStatus,
    TaskType,
)
from octopus.core.timing import cron_problem
from octopus.schemas.common import (
    MAX_ID,
    ActionName,
    AgentName,
    AwareDatetime,
    ErrorInfo,
    Id,
    Inbound,
    Labels,
    Outbound,
    PluginName,
    Text,
)


def _parser(enum: Any) -> BeforeValidator:
    def parse(value: object) -> object:
        return enum.parse(value) if isinstance(value, str) else value

    return BeforeValidator(parse)


TaskTypeIn = Annotated[TaskType, _parser(TaskType)]
OwnershipIn = Annotated[Ownership, _parser(Ownership)]
OnLostIn = Annotated[OnLost, _parser(OnLost)]
TaskStatusIn = Annotated[TaskStatus, _parser(TaskStatus)]
RunStatusIn = Annotated[RunStatus, _parser(RunStatus)]
OverlapPolicyIn = Annotated[OverlapPolicy, _parser(OverlapPolicy)]
MissedPolicyIn = Annotated[MissedPolicy, _parser(MissedPolicy)]

MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_INTERVAL_SECONDS = 366 * 24 * 3600
MAX_JITTER_SECONDS = 24 * 3600


class TaskCreate(Inbound):
    """A new task: what to run, when, where and how."""

    name: Text | None = Field(
        default=None, max_length=200, description="Defaults to plugin.action."
    )
    plugin: PluginName
    action: ActionName
    args: list[Any] = Field(default_factory=list, max_length=1000)
    kwargs: dict[str, Any] = Field(default_factory=dict, max_length=1000)
    type: TaskTypeIn = TaskType.ADHOC
    ownership: OwnershipIn = Ownership.ANYONE
    target: AgentName | None = Field(default=None, description="Agent name; only for specific.")
    labels: Labels = Field(default_factory=dict, description="Every pair must match the agent's.")
    timeout_seconds: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_SECONDS)
    max_retries: int = Field(default=0, ge=0, le=100)
    retry_backoff_seconds: float = Field(default=1.0, ge=0, le=3600)
    on_lost: OnLostIn = OnLost.RETRY
    run_at: AwareDatetime | None = Field(default=None, description="scheduled: when it fires.")
    interval_seconds: float | None = Field(
        default=None, gt=0, le=MAX_INTERVAL_SECONDS, description="interval: seconds between runs."
    )
    start_at: AwareDatetime | None = Field(
        default=None, description="interval: the first fire time (default: now)."
    )
    cron: Text | None = Field(
        default=None,
        max_length=200,
        description="cron: 5 fields, or 6 with a leading seconds field.",
    )
    timezone: Text = Field(
        default="UTC", max_length=64, description="IANA zone the cron expression is read in."
    )
    end_at: AwareDatetime | None = Field(
        default=None, description="interval and cron: no run fires after this time."
    )
    max_runs: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="interval and cron: end after this many runs."
    )
    jitter_seconds: float = Field(
        default=0.0,
        ge=0,
        le=MAX_JITTER_SECONDS,
        description="Start each run up to this many seconds after its fire time (fixed per run).",
    )
    overlap_policy: OverlapPolicyIn = Field(
        default=OverlapPolicy.SKIP,
        description="A firing while the previous run is unfinished: "
        "skip, queue_one, allow or cancel_previous.",
    )
    missed_policy: MissedPolicyIn = Field(
        default=MissedPolicy.RUN_ONCE,
        description="Firings missed while the server was down or the task paused: "
        "run_once, skip or run_all.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a key too long for a path
            raise ValueError(f"unknown IANA time zone '{value}'") from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            problem = cron_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _fields_fit_type_and_ownership(self) -> Self:
        if self.ownership is Ownership.SPECIFIC and self.target is None:
            raise ValueError("target: required when ownership is specific")
        if self.ownership is not Ownership.SPECIFIC and self.target is not None:
            raise ValueError("target: only allowed when ownership is specific")
        for task_type, field_name in _NEEDS.items():
            present = getattr(self, field_name) is not None
            if self.type is task_type and not present:
                raise ValueError(f"{field_name}: required when type is {task_type.value}")
            if self.type is not task_type and present:
                raise ValueError(f"{field_name}: only allowed when type is {task_type.value}")
        self._check_limits()
        return self

    def _check_limits(self) -> None:
        if not self.type.repeats:
            for field_name in ("end_at", "max_runs"):
                if getattr(self, field_name) is not None:
                    raise ValueError(f"{field_name}: only allowed when type is interval or cron")
        if self.type is TaskType.ADHOC and self.jitter_seconds:
            raise ValueError("jitter_seconds: not allowed when type is adhoc")
        if self.end_at is not None and self.start_at is not None and self.end_at <= self.start_at:
            raise ValueError("end_at: must be after start_at")
        interval = self.interval_seconds
        if interval is not None and self.jitter_seconds >= interval:
            raise ValueError("jitter_seconds: must be less than interval_seconds")


_NEEDS = {
    TaskType.SCHEDULED: "run_at",
    TaskType.INTERVAL: "interval_seconds",
    TaskType.CRON: "cron",
}
EDITABLE_FIELDS = (
    "name",
    "args",
    "kwargs",
    "labels",
    "timeout_seconds",
    "max_retries",
    "retry_backoff_seconds",
    "on_lost",
    "run_at",
    "interval_seconds",
    "start_at",
    "cron",
    "timezone",
    "end_at",
    "max_runs",
    "jitter_seconds",
    "overlap_policy",
    "missed_policy",
)


class TaskUpdate(Inbound):
    """Changes to a task that has not finished; fields left out keep their value.

    The result is checked like a new task of the same type; `null` clears an optional field.
    """

    name: Text | None = Field(default=None, max_length=200)
    args: list[Any] | None = Field(default=None, max_length=1000)
    kwargs: dict[str, Any] | None = Field(default=None, max_length=1000)
    labels: Labels | None = None
    timeout_seconds: float | None = None
    max_retries: int | None = None
    retry_backoff_seconds: float | None = None
    on_lost: OnLostIn | None = None
    run_at: AwareDatetime | None = None
    interval_seconds: float | None = None
    start_at: AwareDatetime | None = None
    cron: Text | None = Field(default=None, max_length=200)
    timezone: Text | None = Field(default=None, max_length=64)
    end_at: AwareDatetime | None = None
    max_runs: int | None = None
    jitter_seconds: float | None = None
    overlap_policy: OverlapPolicyIn | None = None
    missed_policy: MissedPolicyIn | None = None


MAX_BULK_TASKS = 1000


class TaskBulkCreate(Inbound):
    """Several new tasks, stored together or not at all."""

    tasks: list[TaskCreate] = Field(
        min_length=1,
        max_length=MAX_BULK_TASKS,
        description=f"1 to {MAX_BULK_TASKS} tasks, each exactly as for a single create.",
    )


class ExecutionRead(Outbound):
    """One agent's attempt at one run."""

    id: int
    run_id: int
    task_id: int
    agent: str | None
    status: ExecutionStatus
    attempt: int
    retry_of: int | None
    result: Any = None
    error: ErrorInfo | None = None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None


class RunRead(Outbound):
    """One firing of a task with its executions and their roll-up."""

    id: int
    task_id: int
    fire_time: datetime
    status: RunStatus
    reason: str | None
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]
    summary: str
    executions: list[ExecutionRead]


class TaskRead(Outbound):  # type: ignore[no-redef]  # pydantic-mypy clashes with a field named kwargs
    """A stored task."""

    id: int
    name: str
    plugin: str
    action: str
    args: list[Any]
    kwargs: dict[str, Any]
    type: TaskType
    ownership: Ownership
    target: str | None
    labels: dict[str, str]
    timeout_seconds: float | None
    max_retries: int
    retry_backoff_seconds: float
    on_lost: OnLost
    status: TaskStatus
    last_run_status: RunStatus | None
    run_at: datetime | None
    interval_seconds: float | None
    start_at: datetime | None
    cron: str | None
    timezone: str
    end_at: datetime | None
    max_runs: int | None
    jitter_seconds: float
    overlap_policy: OverlapPolicy
    missed_policy: MissedPolicy
    run_count: int
    last_fire_time: datetime | None
    next_run_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TaskBulkRead(Outbound):
    """The tasks a bulk create stored, in the order they were sent."""

    tasks: list[TaskRead]


class TaskBulkIds(Outbound):
    """The ids of the tasks a bulk create stored, in the order they were sent (the answer to
    `Prefer: return=minimal`)."""

    ids: list[int]


class TaskDetail(TaskRead):  # type: ignore[no-redef]
    """A task with its next fire times (in its zone) and its runs, newest first."""

    upcoming: list[datetime]
    runs: list[RunRead]


class LogRead(Outbound):
    """An execution's captured stdout and stderr (bounded; ``truncated`` says if cut)."""

    execution_id: int
    log: str
    truncated: bool


__all__ = [
    "ErrorInfo",
    "ExecutionRead",
    "Id",
    "LogRead",
    "RunRead",
    "TaskBulkCreate",
    "TaskBulkIds",
    "TaskBulkRead",
    "TaskCreate",
    "TaskDetail",
    "TaskRead",
    "TaskStatusIn",
    "TaskUpdate",
]
