"""The executor with real warm worker processes: results, errors, output, timeouts, cancel."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from octopus.agent.executor import (
    ExecutionOutcome,
    ExecutionRequest,
    Executor,
    Withdrawn,
    read_bounded_log,
)
from octopus.agent.worker import nobody_writes
from octopus.agent.worker_process import WorkerError, worker_environment
from octopus.core.enums import ExecutionStatus
from octopus.plugins.loader import sha256_of
from tests.unit.waiting import async_wait_for

PLUGIN = """
import asyncio, os, subprocess, sys, time, types

def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}

def boom(message):
    raise ValueError(message)

def not_json():
    return {"when": object()}

def nan():
    return float("nan")

def int_keys():
    return {1: "a"}

def talk():
    print("to stdout")
    print("to stderr", file=sys.stderr)
    subprocess.run([sys.executable, "-c", "print('from a child')"], check=True)
    return "done"

def flood(size):
    sys.stdout.write("H" * 1000 + "x" * size + "T" * 1000)
    return size

def tree(pid_file):
    child = subprocess.Popen(["sleep", "300"])
    with open(pid_file, "w") as handle:
        handle.write(str(child.pid))
    time.sleep(300)

def pid():
    return os.getpid()

def env(name):
    return os.environ.get(name)

def die():
    os._exit(3)

async def later(value):
    await asyncio.sleep(0.01)
    return value

@types.coroutine
def legacy_later(value):
    yield from asyncio.sleep(0.01)
    return value

def plain_generator():
    yield 1

def close_stdout():
    print("before the close", flush=True)
    os.close(1)
    print("to stderr after", file=sys.stderr, flush=True)
    return "closed"

def counter():
    global COUNT
    COUNT = globals().get("COUNT", 0) + 1
    return COUNT

def capture_file(seconds=0):
    time.sleep(seconds)
    return os.readlink("/proc/self/fd/1")

def leave_writer(shell):
    subprocess.Popen(["sh", "-c", shell])
    return os.readlink("/proc/self/fd/1")
"""


_HELLO = 'echo \'{"event": "ready", "pid": 1}\'\n'
"""A stand-in worker's hello, as the real worker says it."""


def _stand_in_python(tmp_path: Path, script: str) -> tuple[Path, Path]:
    """A shell script the executor starts as its workers' Python (``script`` after the
    shebang), and the test plugin beside it."""
    python = tmp_path / "python-stand-in"
    python.write_text(f"#!/bin/sh\n{script}", encoding="utf-8")
    python.chmod(0o755)
    plugin = tmp_path / "testplug.py"
    plugin.write_text(PLUGIN, encoding="utf-8")
    return python, plugin


class Harness:
    def __init__(self, executor: Executor, plugin: Path) -> None:
        self.executor = executor
        self.plugin = plugin
        self.sha256 = sha256_of(plugin.read_bytes())
        self._ids = iter(range(1, 10_000))

    def request(
        self, action: str, *args: Any, timeout: float | None = 20, **kwargs: Any
    ) -> ExecutionRequest:
        return ExecutionRequest(
            id=next(self._ids),
            plugin="testplug",
            sha256=self.sha256,
            path=self.plugin,
            action=action,
            args=list(args),
            kwargs=kwargs,
            timeout_seconds=timeout,
        )

    async def run(self, action: str, *args: Any, **kwargs: Any) -> ExecutionOutcome:
        return await self.executor.run(self.request(action, *args, **kwargs))


Scenario = Callable[[Harness], Awaitable[None]]


def run_with_executor(tmp_path: Path, scenario: Scenario, size: int = 1) -> None:
    plugin = tmp_path / "testplug.py"
    plugin.write_text(PLUGIN, encoding="utf-8")

    async def main() -> None:
        async with Executor(size=size, work_dir=tmp_path / "work") as executor:
            await scenario(Harness(executor, plugin))

    asyncio.run(main())


def test_success_keeps_json_values_exactly(tmp_path: Path) -> None:
    values = [True, False, None, 0, -7, 2**62, 1.5, "", "héllo ✓ 日本", {"a": [1, {"b": None}]}, []]

    async def scenario(h: Harness) -> None:
        outcome = await h.run("echo", *values, key={"nested": [True, None, "ü"]})
        assert outcome.status is ExecutionStatus.SUCCEEDED
        assert outcome.error is None
        assert outcome.result == {"args": values, "kwargs": {"key": {"nested": [True, None, "ü"]}}}
        assert outcome.started_at <= outcome.finished_at

    run_with_executor(tmp_path, scenario)


def test_exception_is_recorded_with_type_message_and_traceback(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        outcome = await h.run("boom", "it broke")
        assert outcome.status is ExecutionStatus.FAILED
        assert outcome.error is not None
        assert (outcome.error.type, outcome.error.message) == ("ValueError", "it broke")
        assert outcome.error.traceback is not None
        assert "in boom" in outcome.error.traceback
        assert "worker.py" not in outcome.error.traceback

    run_with_executor(tmp_path, scenario)


@pytest.mark.parametrize("action", ["not_json", "nan", "int_keys"])
def test_non_json_result_fails_clearly(tmp_path: Path, action: str) -> None:
    async def scenario(h: Harness) -> None:
        outcome = await h.run(action)
        assert outcome.status is ExecutionStatus.FAILED
        assert outcome.error is not None and outcome.error.type == "NonJSONResult"
        assert outcome.result is None

    run_with_executor(tmp_path, scenario)


def test_missing_action_and_bad_arguments_fail(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        missing = await h.run("nope")
        assert missing.error is not None and missing.error.type == "PluginError"
        wrong = await h.run("boom", 1, 2, 3)
        assert wrong.error is not None and wrong.error.type == "TypeError"

    run_with_executor(tmp_path, scenario)


def test_stdout_stderr_and_child_output_are_captured(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        outcome = await h.run("talk")
        assert outcome.status is ExecutionStatus.SUCCEEDED
        assert outcome.log.splitlines() == ["to stdout", "to stderr", "from a child"]
        assert not outcome.log_truncated
        quiet = await h.run("echo")
        assert quiet.log == ""
        _only_spares_left(tmp_path / "work", h.executor.size)

    run_with_executor(tmp_path, scenario)
    assert list((tmp_path / "work").iterdir()) == []  # closing removes the spares too


def _only_spares_left(work: Path, workers: int) -> None:
    """Every execution's output is gone; what is left is empty files for the next executions:
    made ahead (one per worker at most) or kept by a worker whose last execution was quiet."""
    spares = list(work.iterdir())
    assert 0 < len(spares) <= 2 * workers
    assert all(spare.stat().st_size == 0 for spare in spares)


def test_large_output_keeps_head_and_tail(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        outcome = await h.run("flood", 600_000)
        assert outcome.status is ExecutionStatus.SUCCEEDED
        assert outcome.log_truncated
        assert len(outcome.log) <= 256 * 1024
        assert outcome.log.startswith("H" * 1000) and outcome.log.endswith("T" * 1000)
        assert "bytes of output truncated" in outcome.log

    run_with_executor(tmp_path, scenario)


def test_read_bounded_log_edges(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert read_bounded_log(path) == ("", False)
    path.write_bytes(b"ok\x00\xff")
    assert read_bounded_log(path) == ("ok\ufffd\ufffd", False)
    path.write_bytes(b"a" * 50 + b"b" * 50)
    text, truncated = read_bounded_log(path, limit=80 + 100)
    assert (text, truncated) == ("a" * 50 + "b" * 50, False)
    path.write_bytes(b"a" * 300 + b"b" * 300)
    text, truncated = read_bounded_log(path, limit=300)
    assert (
        truncated and len(text) <= 300 and text.startswith("a" * 100) and text.endswith("b" * 100)
    )


def test_timeout_kills_the_whole_tree_and_a_fresh_worker_takes_over(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"

    async def scenario(h: Harness) -> None:
        before = await h.run("pid")
        outcome = await h.run("tree", str(pid_file), timeout=1.0)
        assert outcome.status is ExecutionStatus.TIMED_OUT
        assert outcome.error is not None and outcome.error.type == "TimeoutError"
        grandchild = int(pid_file.read_text(encoding="utf-8"))
        await async_wait_for(lambda: not _alive(grandchild), 5, "the grandchild to die")
        assert not _alive(before.result)
        after = await h.run("pid")
        assert after.status is ExecutionStatus.SUCCEEDED and after.result != before.result

    run_with_executor(tmp_path, scenario)


def test_cancel_stops_a_running_execution(tmp_path: Path) -> None:
    marker = tmp_path / "started"

    async def scenario(h: Harness) -> None:
        request = h.request("tree", str(marker))
        running = asyncio.create_task(h.executor.run(request))
        await async_wait_for(marker.exists, 10, "the action to start")
        assert h.executor.running == (request.id,)
        assert h.executor.cancel(request.id)
        outcome = await running
        assert outcome.status is ExecutionStatus.CANCELLED
        assert not h.executor.cancel(request.id)
        assert h.executor.running == ()
        # SIGKILL lands asynchronously: on a busy machine the action may still be exiting.
        action = int(marker.read_text(encoding="utf-8"))
        await async_wait_for(lambda: not _alive(action), 5, "the cancelled action to die")

    run_with_executor(tmp_path, scenario)


def test_a_cancel_ends_an_execution_waiting_for_a_worker_at_once(tmp_path: Path) -> None:
    marker = tmp_path / "started"

    async def scenario(h: Harness) -> None:
        busy = h.request("tree", str(marker))
        running = asyncio.create_task(h.executor.run(busy))
        await async_wait_for(marker.exists, 10, "the first action to start")
        waiting = h.request("echo", 1)
        queued = asyncio.create_task(h.executor.run(waiting))
        await async_wait_for(lambda: waiting.id in h.executor.running, 5, "the second to wait")
        assert h.executor.cancel(waiting.id)
        outcome = await asyncio.wait_for(queued, 2)  # the worker stays busy for 300 s
        assert outcome.status is ExecutionStatus.CANCELLED
        assert outcome.worker_pid is None and outcome.error is not None
        assert not running.done()
        h.executor.cancel(busy.id)
        assert (await running).status is ExecutionStatus.CANCELLED
        after = await h.run("echo", 2)  # the worker freed by the cancel was not lost
        assert after.status is ExecutionStatus.SUCCEEDED

    run_with_executor(tmp_path, scenario)


def test_withdraw_takes_back_the_newest_waiting_executions_only(tmp_path: Path) -> None:
    marker = tmp_path / "started"

    async def scenario(h: Harness) -> None:
        busy = h.request("tree", str(marker), timeout=1.0)
        running = asyncio.create_task(h.executor.run(busy))
        await async_wait_for(marker.exists, 10, "the first action to start")
        waiting = [h.request("echo", index) for index in range(3)]
        runs = [asyncio.create_task(h.executor.run(request)) for request in waiting]
        await async_wait_for(lambda: h.executor.waiting == 3, 5, "three to wait")
        assert h.executor.withdraw(2) == [waiting[2].id, waiting[1].id]
        assert h.executor.waiting == 1
        assert h.executor.withdraw(0) == []
        for withdrawn in runs[1:]:
            with pytest.raises(Withdrawn):
                await asyncio.wait_for(withdrawn, 2)  # the worker stays busy for 1 s
        assert waiting[1].id not in h.executor.running
        assert (await running).status is ExecutionStatus.TIMED_OUT
        assert (await runs[0]).result == {"args": [0], "kwargs": {}}
        again = await h.executor.run(waiting[2])  # a withdrawn execution may be run after all
        assert again.status is ExecutionStatus.SUCCEEDED

    run_with_executor(tmp_path, scenario)


def test_an_execution_that_waited_starts_when_a_worker_takes_it(tmp_path: Path) -> None:
    marker = tmp_path / "started"

    async def scenario(h: Harness) -> None:
        first = asyncio.create_task(h.run("tree", str(marker), timeout=0.5))
        await async_wait_for(marker.exists, 10, "the first action to start")
        second = await h.run("echo", 1)
        ended = await first
        assert ended.status is ExecutionStatus.TIMED_OUT
        assert second.status is ExecutionStatus.SUCCEEDED
        assert second.started_at >= ended.finished_at

    run_with_executor(tmp_path, scenario)


def test_worker_is_reused_and_keeps_module_state(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        first, second = await h.run("pid"), await h.run("pid")
        assert first.result == second.result == first.worker_pid
        assert first.result != os.getpid()
        assert [(await h.run("counter")).result for _ in range(3)] == [1, 2, 3]

    run_with_executor(tmp_path, scenario)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="leases and /proc: Linux")
def test_a_quiet_action_s_capture_file_is_named_again_for_its_worker_s_next(
    tmp_path: Path,
) -> None:
    async def scenario(h: Harness) -> None:
        paths = [(await h.run("capture_file")).result for _ in range(3)]
        assert paths[0] == paths[1] == paths[2]
        loud = await h.run("talk")
        assert "to stdout" in loud.log
        after = (await h.run("capture_file")).result
        assert after != paths[0]  # what an action printed is never the next one's start
        assert (await h.run("capture_file")).result == after

    run_with_executor(tmp_path, scenario)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="leases and /proc: Linux")
@pytest.mark.parametrize(
    "shell",
    ["sleep 0.5; echo late", "(sleep 0.5; echo late) &"],
    ids=["a child", "an orphaned grandchild"],
)
def test_a_process_left_writing_keeps_its_output_out_of_the_next_execution(
    tmp_path: Path, shell: str
) -> None:
    async def scenario(h: Harness) -> None:
        left = await h.run("leave_writer", shell)
        assert left.status is ExecutionStatus.SUCCEEDED and left.log == ""
        following = await h.run("capture_file", 1.0)  # the late line is written meanwhile
        assert following.result != left.result
        assert following.log == ""

    run_with_executor(tmp_path, scenario)


def test_nobody_writes_sees_a_process_holding_the_file_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "capture.log"
    path.write_bytes(b"")
    assert not nobody_writes(str(tmp_path / "missing.log"))
    with path.open("ab"):  # this process too, through another open file
        assert not nobody_writes(str(path))
    with path.open("rb"):  # a reader does not write
        assert nobody_writes(str(path)) is sys.platform.startswith("linux")
    assert nobody_writes(str(path)) is sys.platform.startswith("linux")


def test_a_worker_that_dies_is_reported_and_replaced(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        outcome = await h.run("die")
        assert outcome.status is ExecutionStatus.FAILED
        assert outcome.error is not None and outcome.error.type == "WorkerDied"
        assert "exited with code 3" in outcome.error.message
        assert (await h.run("echo", 1)).result == {"args": [1], "kwargs": {}}

    run_with_executor(tmp_path, scenario)


def test_a_quiet_action_leaves_no_capture_file_behind(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        quiet, loud = await h.run("pid"), await h.run("talk")
        assert (quiet.log, quiet.log_truncated) == ("", False)
        assert "to stdout" in loud.log
        _only_spares_left(tmp_path / "work", h.executor.size)

    run_with_executor(tmp_path, scenario)


def test_an_abandoned_execution_kills_its_action_and_frees_the_worker(tmp_path: Path) -> None:
    marker = tmp_path / "started"

    async def scenario(h: Harness) -> None:
        running = asyncio.create_task(h.run("tree", str(marker)))
        await async_wait_for(marker.exists, 10, "the action to start")
        running.cancel()  # whoever awaited it is gone (the agent aborting)
        with pytest.raises(asyncio.CancelledError):
            await running
        action = int(marker.read_text(encoding="utf-8"))
        await async_wait_for(lambda: not _alive(action), 5, "the abandoned action to die")
        await async_wait_for(lambda: h.executor.running == (), 5, "its worker to be gone")
        assert (await h.run("echo", 1)).status is ExecutionStatus.SUCCEEDED

    run_with_executor(tmp_path, scenario)


FAKE_WORKER = """#!/bin/sh
echo '{"event": "ready", "pid": 1}'
read request
echo '%s'
sleep 30
"""


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("not json", "sent a line that is not JSON"),
        ("[1, 2]", "sent a line that is not a JSON object"),
        ('{"id": 999, "status": "succeeded"}', "answered for execution 999, not 1"),
        ('{"id": 1, "status": "splendid"}', "sent an unknown status"),
    ],
)
def test_a_worker_that_breaks_the_protocol_fails_its_execution(
    tmp_path: Path, answer: str, expected: str
) -> None:
    python = tmp_path / "fake-python"
    python.write_text(FAKE_WORKER % answer, encoding="utf-8")
    python.chmod(0o755)
    plugin = tmp_path / "testplug.py"
    plugin.write_text(PLUGIN, encoding="utf-8")

    async def main() -> None:
        async with Executor(size=1, work_dir=tmp_path / "work", python=str(python)) as executor:
            first = executor.worker_pids
            outcome = await asyncio.wait_for(Harness(executor, plugin).run("pid"), 10)
            assert outcome.status is ExecutionStatus.FAILED
            assert outcome.error is not None and outcome.error.type == "WorkerError"
            assert expected in outcome.error.message
            await async_wait_for(
                lambda: executor.worker_pids not in ((), first), 10, "a replacement worker"
            )

    asyncio.run(main())


def test_executions_waiting_for_a_worker_that_cannot_start_fail_rather_than_wait(
    tmp_path: Path,
) -> None:
    python, plugin = _stand_in_python(  # starts one worker, then refuses to start any more
        tmp_path,
        f'[ -e "{tmp_path}/started" ] && exit 1\n'
        f'touch "{tmp_path}/started"\nexec "{sys.executable}" "$@"\n',
    )

    async def main() -> None:
        async with Executor(size=1, work_dir=tmp_path / "work", python=str(python)) as executor:
            h = Harness(executor, plugin)
            died = await h.run("die")
            assert died.error is not None and died.error.type == "WorkerDied"
            outcomes = await asyncio.wait_for(asyncio.gather(h.run("pid"), h.run("pid")), 10)
            for outcome in outcomes:
                assert outcome.status is ExecutionStatus.FAILED
                assert outcome.error is not None and outcome.error.type == "WorkerError"
            assert executor.running == ()

    asyncio.run(main())


def test_a_worker_that_ends_right_after_its_hello_never_leaves_an_execution_waiting(
    tmp_path: Path,
) -> None:
    python, plugin = _stand_in_python(tmp_path, f"{_HELLO}exit 5\n")

    async def main() -> None:
        for _ in range(5):  # the end may land before or after the executor takes the worker
            try:
                async with Executor(size=1, work_dir=tmp_path / "work", python=str(python)) as ex:
                    outcome = await asyncio.wait_for(Harness(ex, plugin).run("pid"), 10)
                    assert outcome.status is ExecutionStatus.FAILED
            except WorkerError as exc:  # seen to end while starting
                assert "exited with code 5 at start" in str(exc)

    asyncio.run(main())


def test_workers_that_end_while_the_pool_starts_are_never_handed_work(tmp_path: Path) -> None:
    # One worker is slow to say it is ready; the others say so and exit soon after, and their
    # end is heard while the pool still waits for the slow one. Each execution must still end.
    python, plugin = _stand_in_python(
        tmp_path,
        f'if mkdir "{tmp_path}/slow" 2>/dev/null; then sleep 1; exec {sys.executable} "$@"; fi\n'
        f"{_HELLO}sleep 0.3\nexit 5\n",
    )

    async def main() -> None:
        async with Executor(size=4, work_dir=tmp_path / "work", python=str(python)) as ex:
            h = Harness(ex, plugin)
            outcomes = await asyncio.wait_for(asyncio.gather(*(h.run("pid") for _ in range(8))), 10)
            assert ExecutionStatus.SUCCEEDED in {outcome.status for outcome in outcomes}
            assert ex.running == ()

    asyncio.run(main())


def test_an_action_that_closes_its_stdout_keeps_its_worker_and_output(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        outcome = await h.run("close_stdout")
        assert (outcome.status, outcome.result) == (ExecutionStatus.SUCCEEDED, "closed")
        assert "before the close" in outcome.log and "to stderr after" in outcome.log
        after = await h.run("pid")
        assert after.status is ExecutionStatus.SUCCEEDED and after.worker_pid == outcome.worker_pid

    run_with_executor(tmp_path, scenario)


def test_async_action(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        outcome = await h.run("later", {"ok": True})
        assert (outcome.status, outcome.result) == (ExecutionStatus.SUCCEEDED, {"ok": True})

    run_with_executor(tmp_path, scenario)


def test_a_generator_based_coroutine_is_awaited_and_a_plain_generator_is_not(
    tmp_path: Path,
) -> None:
    async def scenario(h: Harness) -> None:
        legacy = await h.run("legacy_later", [1, "two"])
        assert (legacy.status, legacy.result) == (ExecutionStatus.SUCCEEDED, [1, "two"])
        plain = await h.run("plain_generator")
        assert plain.status is ExecutionStatus.FAILED
        assert plain.error is not None and "generator" in plain.error.message

    run_with_executor(tmp_path, scenario)


def test_a_worker_imports_neither_the_source_inspection_nor_the_models() -> None:
    # What a warm worker imports is resident in every worker: the agent's memory budget.
    code = "import sys, octopus.agent.worker as w; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    heavy = {"inspect", "asyncio", "hashlib", "octopus.plugins.loader", "octopus.core.models"}
    assert heavy.isdisjoint(loaded), heavy & set(loaded)


def test_executions_run_in_parallel_on_separate_workers(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        assert len(h.executor.worker_pids) == 2
        outcomes = await asyncio.gather(h.run("pid"), h.run("pid"), h.run("later", 1))
        assert all(o.status is ExecutionStatus.SUCCEEDED for o in outcomes)
        assert {o.worker_pid for o in outcomes} <= set(h.executor.worker_pids)

    run_with_executor(tmp_path, scenario, size=2)


def test_workers_do_not_see_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCTOPUS_ADMIN_TOKEN", "admin-secret-0123456789")
    monkeypatch.setenv("OCTOPUS_JOIN_TOKEN", "join-secret-0123456789")
    monkeypatch.setenv("OCTOPUS_ALLOW_SHELL", "1")
    monkeypatch.setenv("HARMLESS", "yes")

    async def scenario(h: Harness) -> None:
        for name in ("OCTOPUS_ADMIN_TOKEN", "OCTOPUS_JOIN_TOKEN", "OCTOPUS_ALLOW_SHELL"):
            assert (await h.run("env", name)).result is None
        assert (await h.run("env", "HARMLESS")).result == "yes"

    run_with_executor(tmp_path, scenario)


def test_worker_environment_sets_the_shell_flag_only_when_allowed() -> None:
    base = {
        "OCTOPUS_ALLOW_SHELL": "1",
        "OCTOPUS_DATABASE_URL": "postgresql://u:p@h/d",
        "PATH": "/bin",
    }
    assert "OCTOPUS_ALLOW_SHELL" not in worker_environment(base, allow_shell=False)
    assert "OCTOPUS_DATABASE_URL" not in worker_environment(base, allow_shell=False)
    assert worker_environment(base, allow_shell=True)["OCTOPUS_ALLOW_SHELL"] == "1"


def test_a_bad_interpreter_fails_to_start(tmp_path: Path) -> None:
    async def main() -> None:
        executor = Executor(size=1, work_dir=tmp_path, python=str(tmp_path / "no-python"))
        with pytest.raises(WorkerError, match="cannot start a worker"):
            await executor.start()

    asyncio.run(main())


PARENT = """
import asyncio, sys
from pathlib import Path
from octopus.agent.executor import Executor

async def main():
    executor = Executor(size=2, work_dir=Path(sys.argv[1]))
    await executor.start()
    print(" ".join(map(str, executor.worker_pids)), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def test_workers_die_when_the_agent_is_killed(tmp_path: Path) -> None:
    parent = psutil.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)], stdout=psutil.subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        parent.kill()
        parent.wait(10)
        asyncio.run(async_wait_for(lambda: not any(map(_alive, pids)), 10, "workers to die"))
    finally:
        if parent.is_running():
            parent.kill()
        if parent.stdout is not None:
            parent.stdout.close()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
