"""The one place where every status and kind is spelled: values are exactly the CONTRACT strings."""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class _ParsedEnum(StrEnum):
    """A StrEnum that parses case-insensitively and accepts legacy spellings on input."""

    @classmethod
    def _legacy(cls) -> dict[str, str]:
        return {}

    @classmethod
    def parse(cls, raw: str) -> Self:
        """The member for ``raw`` (any case, legacy spellings allowed); ValueError if none."""
        key = raw.strip().lower()
        if key not in cls._value2member_map_:
            key = cls._legacy().get(key, key)
        try:
            return cls(key)
        except ValueError:
            allowed = ", ".join(member.value for member in cls)
            raise ValueError(f"'{raw}' is not one of: {allowed}") from None


class TaskType(_ParsedEnum):
    """When a task fires."""

    ADHOC = "adhoc"
    SCHEDULED = "scheduled"
    INTERVAL = "interval"
    CRON = "cron"

    @property
    def repeats(self) -> bool:
        return self in (TaskType.INTERVAL, TaskType.CRON)


class Ownership(_ParsedEnum):
    """Where a task runs."""

    ALL = "all"
    ANYONE = "anyone"
    SPECIFIC = "specific"


class OnLost(_ParsedEnum):
    """What happens to an ``anyone`` run when its execution is lost."""

    RETRY = "retry"
    FAIL = "fail"


class OverlapPolicy(_ParsedEnum):
    """What a repeating task does when it fires while an earlier run of it is still active."""

    SKIP = "skip"
    QUEUE_ONE = "queue_one"
    ALLOW = "allow"
    CANCEL_PREVIOUS = "cancel_previous"

    @classmethod
    def _legacy(cls) -> dict[str, str]:
        return {"queue-one": "queue_one", "cancel-previous": "cancel_previous"}


class MissedPolicy(_ParsedEnum):
    """What a repeating task does with the firings it missed (server down, task paused)."""

    RUN_ONCE = "run_once"
    SKIP = "skip"
    RUN_ALL = "run_all"

    @classmethod
    def _legacy(cls) -> dict[str, str]:
        return {"run-once": "run_once", "run-all": "run_all"}


class ExecutionStatus(_ParsedEnum):
    """One agent's attempt at one run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"

    @classmethod
    def _legacy(cls) -> dict[str, str]:
        return _LEGACY_OUTCOMES


class RunStatus(_ParsedEnum):
    """One firing of a task."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    MISSED = "missed"

    @classmethod
    def _legacy(cls) -> dict[str, str]:
        return _LEGACY_OUTCOMES


class TaskStatus(_ParsedEnum):
    """A task as a whole; repeating tasks are ``active`` or ``paused`` until cancelled."""

    SCHEDULED = "scheduled"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ACTIVE = "active"
    PAUSED = "paused"

    @classmethod
    def _legacy(cls) -> dict[str, str]:
        return _LEGACY_OUTCOMES


class AgentStatus(_ParsedEnum):
    """An agent as the server sees it."""

    ONLINE = "online"
    OFFLINE = "offline"
    DRAINING = "draining"


_LEGACY_OUTCOMES = {
    "created": "pending",
    "active": "running",
    "done": "succeeded",
    "success": "succeeded",
    "completed": "succeeded",
}
