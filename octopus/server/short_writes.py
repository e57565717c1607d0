"""Short store writes on the event loop, when SQLite's single writer is free.

A store call in a worker thread costs two thread hops, and on SQLite its transaction holds the
only writer while that thread waits for the GIL the event loop holds (parsing and answering
other requests): a claim held the writer twice as long as its own work took, and everything
behind it waited. The hot writes of dispatch (a single create, a claim, a batch of reports) are
a few milliseconds at most, so the loop runs them itself whenever no thread holds the writer.
When one does (a bulk create, the scheduler, the heartbeat batcher), or on PostgreSQL, whose
writes wait on the network and on row locks, the call goes to a worker thread as before: the
loop never waits for the writer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from octopus.store.base import Store

P = ParamSpec("P")
T = TypeVar("T")

SHORT_WRITE_ROWS = 100
"""Writes touching at most this many executions count as short: a batch of 100 reports is
about 11 ms of store work here (112 us each), a claim of 100 about 6 ms; longer ones would
stall every other request while the loop ran them."""


async def store_write(
    store: Store, rows: int, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """``work(*args, **kwargs)``, a store call writing about ``rows`` executions: on the event
    loop when that is at most ``SHORT_WRITE_ROWS`` and the writer is free at once, else in a
    worker thread."""
    if rows <= SHORT_WRITE_ROWS:
        with store.writer_if_free() as held:
            if held:
                return work(*args, **kwargs)
    return await run_in_threadpool(work, *args, **kwargs)
