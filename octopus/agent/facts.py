"""What an agent says about itself in each heartbeat: host, process, load and capacity."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import psutil

from octopus import __version__
from octopus.schemas.agents import AgentFactsIn


def local_ip(server_url: str) -> str:
    """Return the local address used to reach the server ("" if unknown); sends no packet."""
    parts = urlsplit(server_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])
    return ""


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, for example in some containers
        return str(os.getuid())


class FactsCollector:
    """Collects heartbeat facts; the slow, fixed ones once at start."""

    def __init__(self, *, concurrency: int, ip: str = "") -> None:
        """Record the fixed facts of this agent process."""
        self.concurrency = concurrency
        self.ip = ip
        self.hostname = socket.gethostname()
        self.os_user = _os_user()
        self.pid = os.getpid()
        self.started_at = datetime.now(UTC)
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement

    def collect(
        self, *, free_slots: int, running: Iterable[int], plugin_versions: Mapping[str, str]
    ) -> AgentFactsIn:
        """Return the facts for one heartbeat."""
        return AgentFactsIn(
            hostname=self.hostname[:255],
            ip=self.ip,
            os_user=self.os_user[:128],
            pid=self.pid,
            started_at=self.started_at,
            concurrency=self.concurrency,
            free_slots=max(0, free_slots),
            running=sorted(running)[:1024],
            plugin_versions=dict(plugin_versions),
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=psutil.virtual_memory().percent,
            version=__version__,
        )
