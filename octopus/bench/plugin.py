"""The bench plugin ``octobench``: written into the plugins dir of the server the bench starts."""

from __future__ import annotations

from pathlib import Path

PLUGIN_NAME = "octobench"

PLUGIN_SOURCE = '''"""Bench plugin: actions that do nothing but say when they started."""

import time


def mark() -> float:
    """Return the wall-clock time at which this action started (epoch seconds)."""
    return time.time()


def noop() -> None:
    """Do nothing."""


def record(path: str, seconds: float = 0.0) -> int:
    """Append a line to ``path`` (one per start of this action), then sleep ``seconds``."""
    with open(path, "a", encoding="utf-8") as marks:
        marks.write(f"{time.time()}\\n")
    time.sleep(seconds)
    return 1
'''


def write_plugin(plugins_dir: Path) -> Path:
    """Write ``octobench.py`` into ``plugins_dir`` and return its path."""
    plugins_dir.mkdir(parents=True, exist_ok=True)
    path = plugins_dir / f"{PLUGIN_NAME}.py"
    path.write_text(PLUGIN_SOURCE, encoding="utf-8")
    return path
