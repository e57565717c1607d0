"""The agent's own entry point, ``python -m octopus.agent``: a process that holds only what
running an agent needs.

``octopus agent`` is parsed by the whole command line (typer, pydantic-settings and, through
the other command groups, FastAPI, SQLAlchemy and the bench), about 70 MB that an idle agent
would carry for ever. So once its settings are checked, the command re-executes Python on this
module in the same process (same pid, so signals, supervisors and PR_SET_PDEATHSIG of the
workers are unaffected) and hands the settings over in an environment variable that is removed
at once, before any worker inherits the environment.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

SETTINGS_ENV = "OCTOPUS_AGENT_SECRET_SETTINGS"
"""Carries the settings (with the join token) across the exec; ``SECRET`` in the name keeps it
out of worker environments even if it were left behind."""

FIELDS = (
    "server_url",
    "agent_name",
    "join_token",
    "labels",
    "concurrency",
    "prefetch",
    "state_dir",
    "heartbeat_interval",
    "allow_shell",
    "log_level",
    "log_file",
)


def exec_slim(settings: Any) -> NoReturn:
    """Replace this process with ``python -m octopus.agent`` running ``settings``."""
    options = {name: getattr(settings, name) for name in FIELDS}
    options["state_dir"] = str(options["state_dir"])
    options["log_file"] = None if options["log_file"] is None else str(options["log_file"])
    env = {**os.environ, SETTINGS_ENV: json.dumps(options)}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "octopus.agent"], env)


def main() -> int:
    """Run the agent from the settings the command line handed over."""
    raw = os.environ.pop(SETTINGS_ENV, None)
    if raw is None:
        sys.stderr.write("python -m octopus.agent is started by 'octopus agent'\n")
        return 2
    from octopus.agent.agent import run_agent_with  # after the pop: nothing inherits it

    return run_agent_with(json.loads(raw))
