"""The server process freezes what start-up built, so full collections under load stay short."""

from __future__ import annotations

import asyncio
import gc

import uvicorn

from octopus.config import ServerSettings
from octopus.server.app import _Server, create_app
from octopus.server.state import ServerState
from tests.unit.waiting import async_wait_for


def test_start_up_objects_are_left_out_of_collections(
    settings: ServerSettings, state: ServerState
) -> None:
    config = uvicorn.Config(create_app(settings, state), host="127.0.0.1", port=0, log_config=None)
    server = _Server(config, on_exit=state.notifier.close)

    async def start_and_stop() -> int:
        serving = asyncio.create_task(server.serve())
        await async_wait_for(lambda: server.started, 30, "the server to start")
        frozen = gc.get_freeze_count()
        gc.unfreeze()  # this test process goes on: give the objects back to the collector
        server.should_exit = True
        await serving
        return frozen

    assert gc.get_freeze_count() == 0
    assert asyncio.run(start_and_stop()) > 10_000
