"""The execution runner handing back work claimed ahead once it turns slow, with a real worker;
and the report encoding the runner's reports go out in.

The server's side is a stand-in here (the e2e suite covers it against a real server): the
runner's contract is only what it does with the answer, or with no answer at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from octopus.agent.client import ServerUnavailable
from octopus.agent.executor import Executor
from octopus.agent.output import OutputStreamer
from octopus.agent.plugin_cache import PluginCache
from octopus.agent.prefetch import Prefetch
from octopus.agent.reports import ReportSender, batched_json
from octopus.agent.runner import ExecutionRunner
from octopus.plugins.loader import sha256_of
from octopus.schemas.agents import ClaimedExecution, ExecutionReport
from octopus.schemas.common import ErrorInfo
from octopus.schemas.reports import BatchedReport
from tests.unit.waiting import async_wait_for

PLUGIN = """
import time

def nap(seconds):
    time.sleep(seconds)
    return seconds

def echo(value):
    return value
"""


class _Plugins:
    """The plugin file, verified here before (the runner submits at once) or not yet."""

    def __init__(self, path: Path, *, verified: bool) -> None:
        self.path = path
        self.verified = verified

    def ready(self, name: str, sha256: str) -> Path | None:
        return self.path if self.verified else None

    async def ensure(self, name: str, sha256: str, fetch: object) -> Path:
        return self.path


class _Output:
    def forget(self, execution_id: int) -> None:
        pass


class _Reports:
    def __init__(self) -> None:
        self.sent: dict[int, ExecutionReport] = {}

    def submit(self, execution_id: int, report: ExecutionReport) -> None:
        self.sent[execution_id] = report


class _Server:
    """Answers releases for every id, or is away (``ServerUnavailable``) every time."""

    def __init__(self, *, away: bool) -> None:
        self.away = away
        self.calls: list[list[int]] = []

    async def release(self, execution_ids: Sequence[int]) -> set[int]:
        self.calls.append(list(execution_ids))
        if self.away:
            raise ServerUnavailable("connection refused")
        return set(execution_ids)


def _claimed(number: int, sha256: str, action: str, *args: Any) -> ClaimedExecution:
    return ClaimedExecution(
        id=number,
        task_id=number,
        run_id=number,
        attempt=1,
        plugin="naps",
        plugin_sha256=sha256,
        action=action,
        args=list(args),
        kwargs={},
        timeout_seconds=30,
        lease_expires_at=datetime.now(UTC) + timedelta(seconds=30),
    )


def _hand_back_after_a_slow_execution(
    tmp_path: Path, server: _Server, *, verified: bool
) -> _Reports:
    """One worker holds a 0.6 s execution and three quick ones claimed ahead behind it; once
    the slow one ends, claim-ahead allows nothing, so the two still waiting go back."""
    plugin = tmp_path / "naps.py"
    plugin.write_text(PLUGIN, encoding="utf-8")
    sha256 = sha256_of(plugin.read_bytes())
    reports = _Reports()

    async def main() -> None:
        async with Executor(size=1, work_dir=tmp_path / "work") as executor:
            runner = ExecutionRunner(
                executor=executor,
                output=cast(OutputStreamer, _Output()),
                plugins=cast(PluginCache, _Plugins(plugin, verified=verified)),
                fetch_plugin=lambda name: None,  # type: ignore[arg-type, return-value]
                reports=cast(ReportSender, reports),
                prefetch=Prefetch(concurrency=1, maximum=256),
                release=server.release,
                max_backoff_seconds=0.01,
                on_slot_freed=lambda: None,
            )
            runner.start(_claimed(1, sha256, "nap", 0.6))
            for number in (2, 3, 4):
                runner.start(_claimed(number, sha256, "echo", number))
            await async_wait_for(lambda: runner.held == 0, 15, "every execution to end")

    asyncio.run(main())
    return reports


VERIFIED = pytest.mark.parametrize(
    "verified", [True, False], ids=["plugin verified before", "plugin first used"]
)


@VERIFIED
def test_the_newest_waiting_executions_are_handed_back_and_not_reported(
    tmp_path: Path, verified: bool
) -> None:
    server = _Server(away=False)
    reports = _hand_back_after_a_slow_execution(tmp_path, server, verified=verified)
    assert server.calls == [[4, 3]]
    assert sorted(reports.sent) == [1, 2]
    assert all(report.status == "succeeded" for report in reports.sent.values())


@VERIFIED
def test_executions_the_server_was_not_told_about_run_here_after_all(
    tmp_path: Path, verified: bool
) -> None:
    server = _Server(away=True)
    reports = _hand_back_after_a_slow_execution(tmp_path, server, verified=verified)
    assert server.calls == [[4, 3]] * 5  # retried with backoff, then given up
    assert sorted(reports.sent) == [1, 2, 3, 4]
    assert reports.sent[4].result == 4


def test_a_report_is_sent_as_the_batched_report_the_server_reads() -> None:
    started = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    report = ExecutionReport(
        status="failed",
        result={"n": [1, 2.5, None], "s": 'é\u2028"q"'},
        error=ErrorInfo(type="ValueError", message="bad", traceback="line"),
        log="out\n",
        log_truncated=True,
        started_at=started,
        finished_at=started + timedelta(seconds=1),
    )
    sent = BatchedReport.model_validate_json(batched_json(42, report))
    assert sent == BatchedReport(execution_id=42, **dict(report))
