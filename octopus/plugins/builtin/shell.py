"""Built-in plugin ``shell``: run a shell command, only on agents that allow it."""

from __future__ import annotations

import os
import subprocess

ALLOW_ENV = "OCTOPUS_ALLOW_SHELL"
"""Set to 1 in the worker environment by an agent started with allow_shell."""


class ShellDisabled(PermissionError):
    """The agent was not started with allow_shell."""


def run(command: str, timeout_seconds: float = 60, cwd: str | None = None) -> dict[str, object]:
    """Run ``command`` with /bin/sh and return its ``returncode``, ``stdout`` and ``stderr``.

    Refused unless the agent runs with allow_shell (``OCTOPUS_ALLOW_SHELL=1``). A non-zero
    return code is part of the result, not an error; exceeding ``timeout_seconds`` raises.
    """
    if os.environ.get(ALLOW_ENV) != "1":
        raise ShellDisabled(
            "the shell plugin is disabled on this agent; start the agent with allow_shell "
            f"({ALLOW_ENV}=1) to enable it"
        )
    completed = subprocess.run(
        command,
        shell=True,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout_seconds,
        cwd=cwd,
        check=False,
    )
    return {
        "returncode": completed.returncode,
        "stdout": completed.stdout,
        "stderr": completed.stderr,
    }
