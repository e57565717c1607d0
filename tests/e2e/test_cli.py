"""The ``octopus`` command line against a real server: exit codes and what it prints."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import Trio
from tests.e2e.harness import ADMIN_TOKEN, ApiClient, ServerProcess, base_env, run_cli

pytestmark = pytest.mark.e2e

GROUPS = ([], ["server"], ["agent"], ["task"], ["plugin"], ["task", "create"], ["agent", "list"])


def _env(server: ServerProcess) -> dict[str, str]:
    return base_env(OCTOPUS_SERVER_URL=server.url, OCTOPUS_ADMIN_TOKEN=ADMIN_TOKEN)


def _created_id(stdout: str) -> int:
    match = re.search(r"task (\d+) created", stdout)
    assert match, stdout
    return int(match.group(1))


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: " ".join(g) or "root")
def test_help_exits_zero(group: list[str]) -> None:
    result = run_cli(*group, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_bad_env_value_stops_the_server_with_one_line() -> None:
    result = run_cli("server", env=base_env(OCTOPUS_SERVER_PORT="99999"), timeout=30)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "OCTOPUS_SERVER_PORT" in lines[0]


def test_create_wait_exits_zero_on_success(server: ServerProcess, trio: Trio) -> None:
    result = run_cli(
        "task", "create", "e2eplug.echo", "1", "true", "word", "--kwargs", '{"k": null}',
        "--labels", "group=trio", "--wait", "--wait-timeout", "30",
        env=_env(server),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout.splitlines()[-1]


def test_create_wait_exits_one_on_failure(server: ServerProcess, trio: Trio) -> None:
    result = run_cli(
        "task", "create", "e2eplug.fail", "--labels", "group=trio", "--wait",
        env=_env(server),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed" in result.stdout


def test_wait_exits_two_on_timeout_and_cancel_stops_it(server: ServerProcess, trio: Trio) -> None:
    env = _env(server)
    created = run_cli("task", "create", "e2eplug.sleep", "60", "--labels", "group=trio", env=env)
    assert created.returncode == 0, created.stderr
    task_id = _created_id(created.stdout)
    waited = run_cli("task", "wait", str(task_id), "--timeout", "0.5", env=env)
    assert waited.returncode == 2, waited.stdout + waited.stderr
    cancelled = run_cli("task", "cancel", str(task_id), env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    waited = run_cli("task", "wait", str(task_id), "--timeout", "15", env=env)
    assert waited.returncode == 1
    assert "cancelled" in waited.stdout


def test_list_show_and_logs_print_the_task(
    server: ServerProcess, api: ApiClient, trio: Trio
) -> None:
    env = _env(server)
    task = api.create_task("e2eplug.speak", "from the cli test", labels=trio.labels)
    api.wait_task(task["id"])

    listed = run_cli("task", "list", "--plugin", "e2eplug", env=env)
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^\s*{task['id']}\s", listed.stdout, re.MULTILINE), listed.stdout

    shown = run_cli("task", "show", str(task["id"]), env=env)
    assert shown.returncode == 0, shown.stderr
    agent = api.executions(task["id"])[0]["agent"]
    assert agent in shown.stdout and "succeeded" in shown.stdout and "speak" in shown.stdout

    logs = run_cli("task", "logs", str(task["id"]), env=env)
    assert logs.returncode == 0, logs.stderr
    assert "out: from the cli test" in logs.stdout and "err: from the cli test" in logs.stdout

    as_json = run_cli("task", "show", str(task["id"]), "--json", env=env)
    assert f'"id": {task["id"]}' in as_json.stdout


def test_agent_and_plugin_lists(server: ServerProcess, trio: Trio) -> None:
    env = _env(server)
    agents = run_cli("agent", "list", env=env)
    assert agents.returncode == 0, agents.stderr
    assert all(name in agents.stdout for name in trio.names)
    plugins = run_cli("plugin", "list", env=env)
    assert plugins.returncode == 0, plugins.stderr
    assert "e2eplug" in plugins.stdout


def test_missing_task_is_one_error_line(server: ServerProcess) -> None:
    result = run_cli("task", "show", "987654321", env=_env(server))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: ") and "987654321" in result.stderr


def test_wrong_token_is_one_error_line(server: ServerProcess) -> None:
    env = base_env(OCTOPUS_SERVER_URL=server.url, OCTOPUS_ADMIN_TOKEN="wrong-token-0123456789")
    result = run_cli("task", "list", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ")


def test_unreachable_server_is_one_error_line() -> None:
    result = run_cli("task", "list", "--server", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: cannot reach server")


def test_show_lists_the_next_five_fire_times_in_the_task_zone(server: ServerProcess) -> None:
    created = run_cli(
        "task", "create", "e2eplug.echo", "1", "--cron", "30 2 * * *", "--tz", "Asia/Kolkata",
        env=_env(server),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    task_id = _created_id(created.stdout)
    shown = run_cli("task", "show", str(task_id), env=_env(server))
    assert shown.returncode == 0, shown.stderr
    assert "next fire times (Asia/Kolkata)" in shown.stdout
    assert len(re.findall(r"02:30:00 \+0530 IST", shown.stdout)) == 5, shown.stdout
    run_cli("task", "cancel", str(task_id), env=_env(server))


def test_create_refuses_a_bad_cron_expression_naming_it(server: ServerProcess) -> None:
    result = run_cli("task", "create", "e2eplug.echo", "1", "--cron", "61 * * * *",
                     env=_env(server))  # fmt: skip
    assert result.returncode != 0
    assert "cron" in result.stderr and "Traceback" not in result.stderr
