"""The only logging setup: a level, stderr, and an optional size-rotated file."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
_CONTEXT_FIELDS = ("task", "run", "execution", "agent", "plugin")
_MAX_LOG_BYTES = 10 * 1024 * 1024
_BACKUPS = 5


class _ContextFilter(logging.Filter):
    """Appends ``extra=`` context fields (task, execution, agent...) to each line."""

    def filter(self, record: logging.LogRecord) -> bool:
        pairs = [
            f"{name}={getattr(record, name)}" for name in _CONTEXT_FIELDS if hasattr(record, name)
        ]
        record.context = f" [{' '.join(pairs)}]" if pairs else ""
        return True


def setup_logging(level: str, log_file: Path | None = None) -> None:
    """Configure the root logger once per process; calling again replaces the handlers."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file, maxBytes=_MAX_LOG_BYTES, backupCount=_BACKUPS, encoding="utf-8"
            )
        )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    formatter = logging.Formatter(_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_ContextFilter())
        root.addHandler(handler)
    root.setLevel(level)
    # Access logs would repeat every heartbeat and claim; keep them for DEBUG only.
    logging.getLogger("uvicorn.access").setLevel(logging.DEBUG if level == "DEBUG" else "WARNING")
    # Migrations and the HTTP client log every step at INFO; keep those for DEBUG only.
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for chatty in ("httpx", "alembic"):
        logging.getLogger(chatty).setLevel(quiet)
