"""What every request may need, built once at start-up and kept on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from octopus.config import ServerSettings
from octopus.server.heartbeats import HeartbeatBatcher
from octopus.server.limiter import FailureLimiter
from octopus.server.notifier import Notifier
from octopus.server.plugin_store import PluginStore
from octopus.server.scheduler import Scheduler
from octopus.server.secrets import ServerTokens
from octopus.store.base import Store


@dataclass(slots=True)
class ServerState:
    """The store, settings, tokens, notifier and plugin store of one server process."""

    settings: ServerSettings
    store: Store
    tokens: ServerTokens
    notifier: Notifier
    plugins: PluginStore
    enrollments: FailureLimiter = field(default_factory=FailureLimiter)
    """Failed enrollments per client address (a join token guessed by brute force)."""
    scheduler: Scheduler | None = None
    """Set while the lifespan runs the scheduler loop."""
    heartbeats: HeartbeatBatcher | None = None
    """Made by the first heartbeat (it needs the running event loop)."""

    @property
    def lease_seconds(self) -> float:
        """How long a claim or heartbeat keeps an execution leased."""
        return self.settings.client_timeout

    def schedule_changed(self) -> None:
        """Wake the scheduler: a task was created, edited, paused, resumed or run now."""
        if self.scheduler is not None:
            self.scheduler.wake()


async def get_state(request: Request) -> ServerState:
    """The ServerState of the app serving ``request`` (async: FastAPI runs a plain def
    dependency in a worker thread, a hop that every request would pay)."""
    state: ServerState = request.app.state.octopus
    return state
