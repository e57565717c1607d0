"""The built-in plugins: system facts, HTTP checks, and the shell that is off by default."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from octopus.agent.executor import ExecutionRequest, Executor
from octopus.core.enums import ExecutionStatus
from octopus.plugins.importing import load_module, resolve_action
from octopus.plugins.loader import BUILTIN_DIR, sha256_of


def builtin(name: str) -> ModuleType:
    return load_module(BUILTIN_DIR / f"{name}.py", name=name)


def test_system_facts_describe_the_host() -> None:
    facts = resolve_action(builtin("system"), "facts")()
    assert facts["cpu_count"] >= 1
    assert facts["python_version"].count(".") == 2
    assert 0 <= facts["memory"]["percent"] <= 100
    assert facts["disk"]["total"] > 0
    assert {"hostname", "os", "platform", "load_average"} <= set(facts)


def test_system_ping() -> None:
    assert resolve_action(builtin("system"), "ping")() == "pong"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_check_ok(web: str) -> None:
    result = resolve_action(builtin("http"), "check")(f"{web}/ok")
    assert result["status"] == 200 and result["ok"] is True and result["elapsed_ms"] >= 0


def test_http_check_unexpected_status(web: str) -> None:
    check = resolve_action(builtin("http"), "check")
    assert check(f"{web}/missing")["ok"] is False
    assert check(f"{web}/missing", expect_status=404)["ok"] is True


def test_http_check_unreachable_is_a_failed_result(web: str) -> None:
    result = resolve_action(builtin("http"), "check")("http://127.0.0.1:9/", timeout_seconds=2)
    assert result["ok"] is False and result["status"] is None and result["error"]


def test_shell_is_refused_without_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCTOPUS_ALLOW_SHELL", raising=False)
    with pytest.raises(PermissionError, match="allow_shell"):
        resolve_action(builtin("shell"), "run")("echo hi")


def test_shell_runs_with_the_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OCTOPUS_ALLOW_SHELL", "1")
    run = resolve_action(builtin("shell"), "run")
    assert run("echo hi; echo err >&2; exit 3", cwd=str(tmp_path)) == {
        "returncode": 3,
        "stdout": "hi\n",
        "stderr": "err\n",
    }


@pytest.mark.parametrize("allow_shell", [False, True])
def test_shell_through_a_worker_follows_the_agent_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allow_shell: bool
) -> None:
    monkeypatch.setenv("OCTOPUS_ALLOW_SHELL", "1")  # the agent's own env must not leak through
    path = BUILTIN_DIR / "shell.py"
    request = ExecutionRequest(
        id=1,
        plugin="shell",
        sha256=sha256_of(path.read_bytes()),
        path=path,
        action="run",
        args=["echo via-worker"],
    )

    async def main() -> None:
        async with Executor(size=1, work_dir=tmp_path, allow_shell=allow_shell) as executor:
            outcome = await executor.run(request)
        if allow_shell:
            assert outcome.status is ExecutionStatus.SUCCEEDED
            assert outcome.result["stdout"] == "via-worker\n"
        else:
            assert outcome.status is ExecutionStatus.FAILED
            assert outcome.error is not None and outcome.error.type == "ShellDisabled"

    asyncio.run(main())
