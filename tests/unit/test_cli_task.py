"""``octopus task`` commands against a fake server: the body sent, waits, and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from octopus.cli import client as client_module
from octopus.cli.main import run
from octopus.config import ClientSettings

NOW = datetime(2026, 1, 31, 9, 0, tzinfo=UTC).isoformat()

Handler = Callable[[httpx.Request], httpx.Response]


def make_task(**overrides: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "id": 7, "name": "echo.echo", "plugin": "echo", "action": "echo", "args": [],
        "kwargs": {}, "type": "adhoc", "ownership": "anyone", "target": None, "labels": {},
        "timeout_seconds": None, "max_retries": 0, "retry_backoff_seconds": 1.0,
        "on_lost": "retry", "status": "pending", "last_run_status": None, "run_at": None,
        "interval_seconds": None, "start_at": None, "cron": None, "timezone": "UTC",
        "end_at": None, "max_runs": None, "jitter_seconds": 0.0, "overlap_policy": "skip",
        "missed_policy": "run_once", "run_count": 0, "last_fire_time": None,
        "next_run_at": None, "created_at": NOW, "updated_at": NOW,
    }  # fmt: skip
    task.update(overrides)
    return task


def make_execution(**overrides: Any) -> dict[str, Any]:
    execution: dict[str, Any] = {
        "id": 11, "run_id": 3, "task_id": 7, "agent": "agent-1", "status": "succeeded",
        "attempt": 1, "retry_of": None, "result": {"ok": True}, "error": None,
        "queued_at": NOW, "started_at": NOW, "finished_at": NOW, "lease_expires_at": None,
    }  # fmt: skip
    execution.update(overrides)
    return execution


def make_detail(status: str, executions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    executions = [make_execution()] if executions is None else executions
    run_ = {
        "id": 3, "task_id": 7, "fire_time": NOW, "status": status, "reason": None,
        "started_at": NOW, "finished_at": None, "counts": {"succeeded": len(executions)},
        "summary": f"{len(executions)}/{len(executions)} succeeded", "executions": executions,
    }  # fmt: skip
    return {**make_task(status=status), "upcoming": [], "runs": [run_]}


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Handler]]:
    """Route the CLI's client to the handler the test appends; records nothing else."""
    handlers: list[Handler] = []

    def from_options(cls: type[client_module.Client], server: Any, token: Any) -> Any:
        settings = ClientSettings(server_url="http://octopus.test", admin_token="x" * 20)
        return cls(settings, transport=httpx.MockTransport(lambda r: handlers[-1](r)))

    monkeypatch.setattr(client_module.Client, "from_options", classmethod(from_options))
    yield handlers


def test_create_sends_parsed_arguments(
    fake_server: list[Handler], capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(201, json=make_task(ownership="specific", target="a1"))

    fake_server.append(handler)
    code = run([
        "task", "create", "echo.echo", "1", "true", "word", "null",
        "--kwargs", '{"k": "\\u00fc"}', "--ownership", "specific", "--target", "a1",
        "--labels", "zone=eu,gpu=yes", "--timeout", "5", "--max-retries", "2",
        "--idempotency-key", "key-1",
    ])  # fmt: skip
    assert code == 0
    body = json.loads(sent[0].content)
    assert body["args"] == [1, True, "word", None]
    assert body["kwargs"] == {"k": "\u00fc"}
    assert body["labels"] == {"zone": "eu", "gpu": "yes"}
    assert (body["ownership"], body["target"], body["type"]) == ("specific", "a1", "adhoc")
    assert (body["timeout_seconds"], body["max_retries"]) == (5.0, 2)
    assert sent[0].headers["Idempotency-Key"] == "key-1"
    assert "task 7 created" in capsys.readouterr().out


def test_create_refuses_two_schedules(fake_server: list[Handler]) -> None:
    assert run(["task", "create", "a.b", "--every", "5", "--cron", "* * * * *"]) == 2


def test_server_error_is_one_line_with_the_field(
    fake_server: list[Handler], capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "error": "validation_error",
        "message": "invalid request",
        "details": [{"field": "target", "message": "required when ownership is specific"}],
    }
    fake_server.append(lambda request: httpx.Response(422, json=body))
    assert run(["task", "create", "a.b", "--ownership", "specific"]) == 1
    err = capsys.readouterr().err
    assert err == "error: invalid request (target: required when ownership is specific)\n"


@pytest.mark.parametrize(("status", "code"), [("succeeded", 0), ("failed", 1), ("cancelled", 1)])
def test_wait_exit_codes(
    fake_server: list[Handler], status: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter([make_detail("pending", []), make_detail("running"), make_detail(status)])
    fake_server.append(lambda request: httpx.Response(200, json=next(answers)))
    assert run(["task", "wait", "7", "--interval", "0.05"]) == code
    assert f"task 7: {status}" in capsys.readouterr().out


def test_wait_times_out_with_exit_two(fake_server: list[Handler]) -> None:
    fake_server.append(lambda request: httpx.Response(200, json=make_detail("running")))
    assert run(["task", "wait", "7", "--timeout", "0.2", "--interval", "0.05"]) == 2


def test_show_prints_runs_and_executions(
    fake_server: list[Handler], capsys: pytest.CaptureFixture[str]
) -> None:
    failed = make_execution(
        id=12, agent="agent-2", status="failed", attempt=2, result=None,
        error={"type": "RuntimeError", "message": "boom", "traceback": None},
    )  # fmt: skip
    fake_server.append(
        lambda request: httpx.Response(200, json=make_detail("failed", [make_execution(), failed]))
    )
    assert run(["task", "show", "7"]) == 0
    out = capsys.readouterr().out
    for text in ("echo.echo", "agent-1", "agent-2", "RuntimeError: boom", '{"ok":true}'):
        assert text in out


def test_list_prints_a_table(
    fake_server: list[Handler], capsys: pytest.CaptureFixture[str]
) -> None:
    page = {"items": [make_task(), make_task(id=8, status="failed")], "total": 2, "limit": 20,
            "offset": 0}  # fmt: skip
    fake_server.append(lambda request: httpx.Response(200, json=page))
    assert run(["task", "list"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 tasks" in out and "failed" in out


def test_logs_print_each_execution(
    fake_server: list[Handler], capsys: pytest.CaptureFixture[str]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/log"):
            return httpx.Response(
                200, json={"execution_id": 11, "log": "hello\n", "truncated": False}
            )
        return httpx.Response(200, json=make_detail("succeeded"))

    fake_server.append(handler)
    assert run(["task", "logs", "7"]) == 0
    out = capsys.readouterr().out
    assert "execution 11 on agent-1" in out and "hello" in out
