"""``octopus agent`` re-executes itself as the slim ``python -m octopus.agent`` (same pid)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from octopus.agent.slim import SETTINGS_ENV
from tests.unit.waiting import wait_for


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _maps(pid: int) -> str:
    """The files mapped into a process: its loaded extension modules show here."""
    return Path(f"/proc/{pid}/maps").read_text()


def _until_running(tmp_path: Path) -> None:
    """The state dir is made after the signal handlers are installed: SIGTERM then drains."""
    wait_for(lambda: (tmp_path / "state" / "work").is_dir(), timeout=30)


def _agent(tmp_path: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OCTOPUS_JOIN_TOKEN": "join-secret", **extra}
    command = [sys.executable, "-m", "octopus", "agent", "--server", "http://127.0.0.1:9"]
    command += ["--name", "slim", "--state-dir", str(tmp_path / "state")]
    return subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)


def test_the_agent_command_becomes_the_slim_process(tmp_path: Path) -> None:
    process = _agent(tmp_path, OCTOPUS_AGENT_NO_EXEC="0")
    try:
        wait_for(lambda: "-m octopus.agent" in _cmdline(process.pid), timeout=30)
        _until_running(tmp_path)
        assert "site-packages/sqlalchemy" not in _maps(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0


def test_the_agent_freezes_its_start_up_objects(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    process = _agent(tmp_path, OCTOPUS_LOG_LEVEL="DEBUG", OCTOPUS_LOG_FILE=str(log))
    try:
        _until_running(tmp_path)
        froze = re.search(r"Froze (\d+) start-up objects", log.read_text(encoding="utf-8"))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert froze is not None and int(froze.group(1)) > 10_000


def test_the_slim_module_alone_refuses_to_start() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "octopus.agent"],
        env={k: v for k, v in os.environ.items() if k != SETTINGS_ENV},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "started by 'octopus agent'" in done.stderr


def test_opting_out_keeps_the_whole_command_line_loaded(tmp_path: Path) -> None:
    process = _agent(tmp_path, OCTOPUS_AGENT_NO_EXEC="1")
    try:
        _until_running(tmp_path)
        assert "-m octopus agent" in _cmdline(process.pid)
        assert "site-packages/sqlalchemy" in _maps(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0


SERVER_ONLY = ("httpx", "click", "rich", "pygments", "croniter", "sqlalchemy", "fastapi")
"""Libraries of the server and the command line that an idle agent would carry for ever."""

_LOADED = f"""
import sys
import octopus.agent.agent
print(",".join(name for name in {SERVER_ONLY!r} if name in sys.modules))
"""


def test_the_slim_agent_leaves_out_the_server_libraries() -> None:
    command = [sys.executable, "-c", _LOADED]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""
