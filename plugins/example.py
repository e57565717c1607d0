"""Example plugin: small actions that show how plugins work and that tests lean on."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any


def hello(name: str = "world") -> str:
    """Greet ``name``."""
    return f"hello, {name}"


def add(a: float, b: float) -> float:
    """Return ``a + b``."""
    return a + b


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Return the inputs unchanged, to check that JSON values survive the round trip."""
    return {"args": list(args), "kwargs": kwargs}


def sleep(seconds: float) -> float:
    """Sleep for ``seconds`` and return them."""
    time.sleep(seconds)
    return seconds


def fail(message: str = "failed on purpose") -> None:
    """Raise RuntimeError(message): an execution that fails."""
    raise RuntimeError(message)


def noisy(lines: int = 3) -> int:
    """Print ``lines`` lines to stdout and as many to stderr; return the count."""
    for number in range(lines):
        sys.stdout.write(f"stdout line {number}\n")
        sys.stderr.write(f"stderr line {number}\n")
    return lines


def countdown(count: int = 10, interval_seconds: float = 1.0) -> str:
    """Print a line every ``interval_seconds``, ``count`` times: output to follow live."""
    for remaining in range(count, 0, -1):
        sys.stdout.write(f"{remaining}...\n")
        sys.stdout.flush()
        time.sleep(interval_seconds)
    return "lift-off"


def write_marker(path: str, seconds: float = 60) -> str:
    """Create the file ``path``, then sleep: shows an execution started, so it can be killed."""
    Path(path).write_text("started\n", encoding="utf-8")
    time.sleep(seconds)
    return path
