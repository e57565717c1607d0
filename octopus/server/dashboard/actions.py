"""What an operator can do to a task from its page, each done through the API's own route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from octopus.core.enums import TaskStatus
from octopus.core.models import Task
from octopus.core.states import TASK_TERMINAL
from octopus.server.routes import tasks as task_routes
from octopus.server.state import ServerState

Perform = Callable[[int, ServerState, str], Awaitable[Any]]
"""An API route called as ``perform(task_id, state, actor)``."""


@dataclass(frozen=True, slots=True)
class TaskAction:
    """A button on the task page: its name (the URL part), label, and when it applies."""

    name: str
    label: str
    route: str
    applies: Callable[[Task], bool]
    danger: bool = False

    @property
    def perform(self) -> Perform | None:
        """The API route function that does it, if this server has it."""
        return cast(Perform | None, getattr(task_routes, self.route, None))


def _unfinished(task: Task) -> bool:
    return task.status not in TASK_TERMINAL


def _repeating_unfinished(task: Task) -> bool:
    return task.spec.type.repeats and _unfinished(task)


TASK_ACTIONS = (
    TaskAction("cancel", "Cancel", "cancel_task", _unfinished, danger=True),
    TaskAction("pause", "Pause", "pause_task", lambda t: t.status is TaskStatus.ACTIVE),
    TaskAction("resume", "Resume", "resume_task", lambda t: t.status is TaskStatus.PAUSED),
    TaskAction("run", "Run now", "run_task_now", _repeating_unfinished),
    TaskAction("delete", "Delete", "delete_task", lambda t: t.status in TASK_TERMINAL, danger=True),
)
BY_NAME = {action.name: action for action in TASK_ACTIONS}


def available_actions(task: Task) -> list[TaskAction]:
    """The actions that apply to ``task`` now and that this server's API offers."""
    return [a for a in TASK_ACTIONS if a.perform is not None and a.applies(task)]
