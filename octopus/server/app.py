"""The app factory and the ``octopus server`` entry point."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any, cast

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from octopus import __version__
from octopus.config import ServerSettings
from octopus.logs import setup_logging
from octopus.plugins.loader import BUILTIN_DIR
from octopus.plugins.signing import PluginSigner
from octopus.server.body_guard import BodyGuard
from octopus.server.clock import utcnow
from octopus.server.dashboard import mount_dashboard
from octopus.server.errors import install_error_handlers
from octopus.server.fast_lane import FastLane
from octopus.server.http_protocol import CoalescingHttpToolsProtocol
from octopus.server.local_agents import LocalAgents
from octopus.server.loops import every
from octopus.server.metrics import Metrics, RequestTimer
from octopus.server.metrics import router as metrics_router
from octopus.server.notifier import Notifier
from octopus.server.plugin_store import PluginStore
from octopus.server.reaper import Reaper
from octopus.server.retention import INTERVAL_SECONDS as RETENTION_INTERVAL_SECONDS
from octopus.server.retention import Retention
from octopus.server.routes import (
    agent_protocol,
    agent_reports,
    agents,
    audit,
    executions,
    health,
    join_token,
    plugins,
    tasks,
)
from octopus.server.routes.agent_protocol import HEARTBEAT_ROUTE
from octopus.server.scheduler import LEAD_SECONDS, Scheduler
from octopus.server.secrets import ServerTokens, ensure_tokens
from octopus.server.state import ServerState
from octopus.store import open_store
from octopus.store.base import Store

logger = logging.getLogger(__name__)

REAPER_INTERVAL_SECONDS = 1.0
PLUGIN_KEY_FILE = "plugin-signing.key"
"""The Ed25519 key that signs plugin versions, created in the data dir on first start."""


def build_state(settings: ServerSettings, store: Store | None = None) -> ServerState:
    """Open the store, apply migrations, load tokens and scan plugins once."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if store is None:
        store = open_store(settings.resolved_database_url())
        store.migrate()
    tokens = ensure_tokens(
        settings.data_dir, settings.admin_token, settings.join_token, store=store, now=utcnow()
    )
    signer = PluginSigner.load_or_create(settings.data_dir / PLUGIN_KEY_FILE)
    plugin_store = PluginStore(store, [BUILTIN_DIR, settings.plugins_dir], signer)
    plugin_store.scan()
    return ServerState(
        settings=settings, store=store, tokens=tokens, notifier=Notifier(), plugins=plugin_store
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServerState = app.state.octopus
    settings = state.settings
    reaper = Reaper(state.store, client_timeout=settings.client_timeout)
    retention = Retention(
        state.store,
        days=settings.retention_days,
        max_runs_per_task=settings.retention_max_runs_per_task,
    )
    stopping = asyncio.Event()
    state.scheduler = Scheduler(state.store, lead_seconds=LEAD_SECONDS)
    loops = [
        asyncio.create_task(state.scheduler.run(stopping, state.notifier, state.lease_seconds)),
        asyncio.create_task(
            every(
                REAPER_INTERVAL_SECONDS,
                lambda: reaper.tick(utcnow()),
                stopping,
                name="Reaper pass",
                then=lambda sweep: state.notifier.wake(sweep.wake),
            )
        ),
        asyncio.create_task(
            every(settings.plugin_scan_seconds, state.plugins.scan, stopping, name="Plugin scan")
        ),
        asyncio.create_task(
            every(
                RETENTION_INTERVAL_SECONDS,
                lambda: retention.tick(utcnow()),
                stopping,
                name="Retention pass",
            )
        ),
    ]
    try:
        yield
    finally:
        stopping.set()
        state.notifier.close()
        await asyncio.gather(*loops)
        state.scheduler = None


def create_app(settings: ServerSettings, state: ServerState | None = None) -> FastLane:
    """The ASGI app: the fast lane in front of the FastAPI app (routes, error handlers, body
    guard, and loops started in the lifespan) and uvicorn's proxy headers.

    Outermost, the lane answers its calls before FastAPI, Starlette and the proxy headers
    look at them (traced on single creates: 0.026 ms less between uvicorn and the lane), and
    the lane reads neither the client's address nor the scheme those headers rewrite. Serve
    it with uvicorn's ``proxy_headers=False``: the app applies them itself, to every call that
    reaches FastAPI.
    """
    app = FastAPI(
        title="Octopus",
        version=__version__,
        summary="Distributed task orchestration: one server, many agents, Python plugins.",
        lifespan=_lifespan,
    )
    app.state.octopus = state or build_state(settings)
    app.state.metrics = metrics = Metrics(app.state.octopus.store)
    install_error_handlers(app)
    for module in (health, tasks, executions, agents, agent_protocol, plugins, audit, join_token):
        app.include_router(module.router)
    app.include_router(metrics_router)
    app.include_router(agent_reports.router)
    mount_dashboard(app, app.state.octopus)
    app.add_middleware(BodyGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestTimer, metrics=metrics, heartbeat_route=HEARTBEAT_ROUTE)
    return FastLane(
        _with_proxy_headers(app),
        state=app.state.octopus,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
    )


def _with_proxy_headers(app: FastAPI) -> ASGIApp:
    """``app`` behind uvicorn's proxy headers, trusting the proxies uvicorn trusts by default
    (its ASGI type hints are its own; the protocol is the same)."""
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    return cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=trusted))


class _Server(uvicorn.Server):
    """Uvicorn, plus releasing long-poll claims as soon as a shutdown signal arrives (uvicorn
    waits for open requests before the lifespan ends, and a claim may wait 25 s), and start-up
    objects frozen out of garbage collection."""

    def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What start-up built (imports, routes, schemas, caches) lives as long as the server;
        # frozen, a full collection no longer walks it: ~160,000 objects, which stalled every
        # request for 60-100 ms each second or two under load (5-12 ms once frozen).
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_exit)
        super().handle_exit(sig, frame)


def run_server(
    settings: ServerSettings, *, on_tokens: Callable[[ServerTokens], None] | None = None
) -> int:
    """Serve until interrupted; start ``settings.local_agents`` agents beside the server.

    ``on_tokens`` is shown the tokens in force once they are known, so the command line can
    print newly generated ones (once: they are saved, and never logged).
    """
    setup_logging(settings.log_level, settings.log_file)
    state = build_state(settings)
    _announce(settings)
    if on_tokens is not None:
        on_tokens(state.tokens)
    app = create_app(settings, state)
    local = LocalAgents(
        count=settings.local_agents,
        server_url=f"http://127.0.0.1:{settings.server_port}",
        join_token=state.tokens.join or "",
        data_dir=settings.data_dir,
    )
    config = uvicorn.Config(
        app,
        host=settings.server_host,
        port=settings.server_port,
        log_config=None,
        timeout_graceful_shutdown=5,
        http=CoalescingHttpToolsProtocol,
        proxy_headers=False,  # applied inside the app, behind the fast lane
    )
    # Local agents back off and retry until the server listens, so they can start first.
    local.start()
    try:
        _Server(config, on_exit=state.notifier.close).run()
    finally:
        local.stop()
        state.store.close()
    return 0


def _announce(settings: ServerSettings) -> None:
    host = "localhost" if settings.server_host in ("0.0.0.0", "::") else settings.server_host
    url = f"http://{host}:{settings.server_port}"
    logger.info("Octopus %s serving the API at %s/api/v1 (docs at %s/docs)", __version__, url, url)
