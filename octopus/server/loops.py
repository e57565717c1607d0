"""Background loops of the server: a step in a worker thread every few seconds, stopped cleanly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def every(
    seconds: float,
    step: Callable[[], T],
    stopping: asyncio.Event,
    *,
    name: str,
    then: Callable[[T], None] | None = None,
) -> None:
    """Run ``step`` in a thread every ``seconds`` until ``stopping`` is set, then ``then`` on
    its result in the event loop. A failing step is logged and tried again next time.

    Stopping waits for a step in flight to finish, so nothing touches the store after it closes.
    """
    while not stopping.is_set():
        try:
            result = await run_in_threadpool(step)
            if then is not None:
                then(result)
        except Exception:
            logger.exception("%s failed; trying again in %s s", name, seconds)
        with suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stopping.wait()
