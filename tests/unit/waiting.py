"""Bounded waiting for the unit tests that start real processes: no bare sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, message: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {message}; last {value!r}"
            )
        time.sleep(0.02)


async def async_wait_for(
    predicate: Callable[[], T], seconds: float = 10.0, message: str = "condition"
) -> T:
    """Like ``wait_for``, but yields to the event loop between polls."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {seconds}s waiting for {message}; last {value!r}"
            )
        await asyncio.sleep(0.02)
