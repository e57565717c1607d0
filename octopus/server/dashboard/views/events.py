"""The Server-Sent Events stream that tells open pages what changed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from octopus.server.dashboard.deps import CurrentSession, DashboardDep, State
from octopus.server.dashboard.render import SECURITY_HEADERS

router = APIRouter(include_in_schema=False)

KEEPALIVE_SECONDS = 15.0
CHECK_SECONDS = 1.0


@router.get("/events")
async def events(
    request: Request, session: CurrentSession, dashboard: DashboardDep, state: State
) -> StreamingResponse:
    """``event: change`` with ``data: <topic>`` whenever tasks, executions or agents change."""

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        async with dashboard.live.subscribe() as queue:
            idle = 0.0
            while not state.notifier.closing and not await request.is_disconnected():
                try:
                    topic = await asyncio.wait_for(queue.get(), CHECK_SECONDS)
                except TimeoutError:
                    idle += CHECK_SECONDS
                    if idle >= KEEPALIVE_SECONDS:
                        idle = 0.0
                        yield ": keepalive\n\n"
                    continue
                idle = 0.0
                yield f"event: change\ndata: {topic}\n\n"

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
