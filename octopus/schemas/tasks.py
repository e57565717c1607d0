"""Wire models for tasks, runs and executions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator, model_validator

from octopus.core.enums import (
    ExecutionStatus,
    OnLost,
    Ownership,
    RunStatus,
    TaskStatus,
    TaskType,
)
from octopus.schemas.common import (
    ActionName,
    AgentName,
    AwareDatetime,
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

MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_INTERVAL_SECONDS = 366 * 24 * 3600


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
    run_at: AwareDatetime | None = None
    interval_seconds: float | None = Field(default=None, gt=0, le=MAX_INTERVAL_SECONDS)
    start_at: AwareDatetime | None = None
    cron: Text | None = Field(default=None, max_length=200)
    timezone: Text = Field(default="UTC", max_length=64)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone '{value}'") from None
        return value

    @model_validator(mode="after")
    def _fields_fit_type_and_ownership(self) -> Self:
        if self.ownership is Ownership.SPECIFIC and self.target is None:
            raise ValueError("target: required when ownership is specific")
        if self.ownership is not Ownership.SPECIFIC and self.target is not None:
            raise ValueError("target: only allowed when ownership is specific")
        needs = {
            TaskType.SCHEDULED: "run_at",
            TaskType.INTERVAL: "interval_seconds",
            TaskType.CRON: "cron",
        }
        for task_type, field_name in needs.items():
            present = getattr(self, field_name) is not None
            if self.type is task_type and not present:
                raise ValueError(f"{field_name}: required when type is {task_type.value}")
            if self.type is not task_type and present:
                raise ValueError(f"{field_name}: only allowed when type is {task_type.value}")
        return self


class ErrorInfo(Outbound):
    """Why an execution did not succeed: exception type, message and traceback."""

    type: str
    message: str
    traceback: str | None = None


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
    next_run_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TaskDetail(TaskRead):  # type: ignore[no-redef]
    """A task with its runs, newest first, each with its executions."""

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
    "TaskCreate",
    "TaskDetail",
    "TaskRead",
    "TaskStatusIn",
]
