"""Plugin used by the end-to-end tests: echo, fail, sleep and output capture."""

from __future__ import annotations

import sys
import time
from typing import Any


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Return the arguments exactly as received."""
    print("echo called", flush=True)
    return {"args": list(args), "kwargs": kwargs}


def fail(message: str = "planned failure") -> None:
    """Always raise RuntimeError(message)."""
    print("about to fail", flush=True)
    raise RuntimeError(message)


def sleep(seconds: float) -> float:
    """Sleep for ``seconds`` and return them."""
    print(f"sleeping {seconds}", flush=True)
    time.sleep(seconds)
    return seconds


def speak(text: str) -> str:
    """Print ``text`` to stdout and to stderr, and return it."""
    print(f"out: {text}", flush=True)
    print(f"err: {text}", file=sys.stderr, flush=True)
    return text
