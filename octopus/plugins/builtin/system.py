"""Built-in plugin ``system``: facts about the agent's host, and a liveness ping."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

import psutil


def facts() -> dict[str, Any]:
    """Describe the host: name, OS, platform, Python, CPUs, load, memory and disk usage."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(os.path.abspath(os.sep))
    return {
        "hostname": socket.gethostname(),
        "os": platform.system(),
        "os_release": platform.release(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python_version": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "memory": {"total": memory.total, "available": memory.available, "percent": memory.percent},
        "disk": {"total": disk.total, "free": disk.free, "percent": disk.percent},
    }


def ping() -> str:
    """Answer "pong": proves the agent can run actions."""
    return "pong"
