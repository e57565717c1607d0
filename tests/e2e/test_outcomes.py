"""What comes back: JSON fidelity, failures with retries, timeouts, cancel and logs."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import AgentFactory, Trio
from tests.e2e.harness import ApiClient, wait_for

pytestmark = pytest.mark.e2e

TRICKY_ARGS = [
    True,
    False,
    None,
    0,
    -1.5,
    9007199254740993,
    "",
    "unicode: \u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9 \u96ea \u0645\u0631\u062d\u0628\u0627",
    "astral plane: \U0001f419 \U0001d11e",
    'quotes " and \\ backslash\nnewline\ttab',
    [],
    {},
    {"nested": [1, [2, [3, {"deep": [None, True, {"x": "y"}]}]]]},
]
TRICKY_KWARGS = {"flag": True, "nothing": None, "text": "caf\u00e9", "list": [{"a": []}]}


def test_json_args_kwargs_and_result_survive_the_round_trip(api: ApiClient, trio: Trio) -> None:
    task = api.create_task("example.echo", *TRICKY_ARGS, kwargs=TRICKY_KWARGS, labels=trio.labels)
    assert task["args"] == TRICKY_ARGS
    assert task["kwargs"] == TRICKY_KWARGS
    done = api.wait_task(task["id"])
    assert done["status"] == "succeeded"
    (execution,) = api.executions(task["id"])
    assert execution["result"] == {"args": TRICKY_ARGS, "kwargs": TRICKY_KWARGS}
    assert execution["error"] is None


def test_arguments_that_do_not_fit_the_action_are_refused(api: ApiClient) -> None:
    response = api.http.post(
        "/api/v1/tasks",
        json={"plugin": "e2eplug", "action": "sleep", "args": [1, 2, 3]},
    )
    assert response.status_code == 422, response.text


def test_failing_action_is_retried_then_fails(api: ApiClient, trio: Trio) -> None:
    task = api.create_task(
        "e2eplug.fail",
        "broken on purpose",
        max_retries=2,
        retry_backoff_seconds=0.1,
        labels=trio.labels,
    )
    done = api.wait_task(task["id"], timeout=30)
    assert done["status"] == "failed"
    executions = api.executions(task["id"])
    assert [e["attempt"] for e in executions] == [1, 2, 3]
    assert {e["status"] for e in executions} == {"failed"}
    for execution in executions:
        assert execution["error"]["type"] == "RuntimeError"
        assert "broken on purpose" in execution["error"]["message"]


def test_succeeding_action_is_not_retried(api: ApiClient, trio: Trio) -> None:
    task = api.create_task("e2eplug.echo", max_retries=2, labels=trio.labels)
    assert api.wait_task(task["id"])["status"] == "succeeded"
    assert [e["attempt"] for e in api.executions(task["id"])] == [1]


def test_action_over_its_timeout_is_timed_out(api: ApiClient, trio: Trio) -> None:
    started = time.monotonic()
    task = api.create_task("e2eplug.sleep", 30, timeout_seconds=1, labels=trio.labels)
    done = api.wait_task(task["id"], timeout=20)
    assert done["status"] == "failed"
    (execution,) = api.executions(task["id"])
    assert execution["status"] == "timed_out"
    assert time.monotonic() - started < 15


def test_action_within_its_timeout_succeeds(api: ApiClient, trio: Trio) -> None:
    task = api.create_task("e2eplug.sleep", 0.2, timeout_seconds=10, labels=trio.labels)
    done = api.wait_task(task["id"])
    assert done["status"] == "succeeded"
    assert api.executions(task["id"])[0]["result"] == 0.2


def test_cancel_stops_a_running_execution(api: ApiClient, trio: Trio) -> None:
    task = api.create_task("e2eplug.sleep", 60, labels=trio.labels)
    api.wait_execution(task["id"], ["running"])
    started = time.monotonic()
    cancelled = api.cancel_task(task["id"])
    assert cancelled["status"] in ("cancelled", "running")
    done = api.wait_task(task["id"], statuses=["cancelled"], timeout=15)
    assert done["status"] == "cancelled"
    (execution,) = api.wait_execution(task["id"], ["cancelled"], timeout=10)
    assert execution["finished_at"] is not None
    assert time.monotonic() - started < 10


def test_cancel_of_a_finished_task_is_a_conflict(api: ApiClient, trio: Trio) -> None:
    task = api.create_task("e2eplug.echo", labels=trio.labels)
    api.wait_task(task["id"])
    response = api.http.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert response.status_code == 409, response.text


def test_stdout_and_stderr_are_captured(api: ApiClient, trio: Trio) -> None:
    task = api.create_task("e2eplug.speak", "captured text", labels=trio.labels)
    assert api.wait_task(task["id"])["status"] == "succeeded"
    (execution,) = api.executions(task["id"])
    log = api.log(execution["id"])
    assert "out: captured text" in log["log"]
    assert "err: captured text" in log["log"]
    assert log["truncated"] is False


def test_output_of_a_running_execution_can_be_followed_live(
    api: ApiClient, agents: AgentFactory
) -> None:
    agents.start(1)
    task = api.create_task("e2eplug.sleep", 4, labels=agents.labels)
    (execution,) = api.wait_execution(task["id"], ["running"])
    live = wait_for(
        lambda: "sleeping 4" in api.log(execution["id"])["log"], timeout=3, message="live output"
    )
    assert live
    assert api.get_task(task["id"])["status"] == "running"
    assert api.wait_task(task["id"])["status"] == "succeeded"
    assert api.log(execution["id"])["log"] == "sleeping 4\n"
