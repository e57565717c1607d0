"""Live output appended to running executions, bounded and fenced."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from octopus.core.enums import ExecutionStatus, Ownership
from octopus.errors import Fenced, NotFound
from octopus.store import SqlStore
from octopus.store.base import Claimed, Outcome
from tests.conftest import FixedClock
from tests.store.conftest import AddAgent

pytestmark = pytest.mark.usefixtures("demo_plugin")


def test_output_is_appended_in_order_up_to_the_limit(
    store: SqlStore,
    add_agent: AddAgent,
    claim: Callable[..., list[Claimed]],
    adhoc: Callable[..., int],
) -> None:
    add_agent("a1")
    adhoc()
    [work] = claim("a1")
    execution_id = work.execution.id
    store.append_output(execution_id, agent="a1", text="one\n", limit=10)
    store.append_output(execution_id, agent="a1", text="two\n", limit=10)
    assert store.get_execution_log(execution_id) == ("one\ntwo\n", False)
    store.append_output(execution_id, agent="a1", text="three\n", limit=10)
    assert store.get_execution_log(execution_id) == ("one\ntwo\n", True)


def test_output_from_an_agent_without_the_lease_is_fenced(
    store: SqlStore,
    clock: FixedClock,
    add_agent: AddAgent,
    claim: Callable[..., list[Claimed]],
    adhoc: Callable[..., int],
) -> None:
    add_agent("a1")
    add_agent("a2")
    adhoc(ownership=Ownership.SPECIFIC, target="a1")
    [work] = claim("a1")
    execution_id = work.execution.id
    with pytest.raises(Fenced):
        store.append_output(execution_id, agent="a2", text="forged", limit=100)
    store.finish_execution(
        execution_id,
        agent="a1",
        outcome=Outcome(status=ExecutionStatus.SUCCEEDED, log="final\n"),
        now=clock.now,
    )
    with pytest.raises(Fenced):
        store.append_output(execution_id, agent="a1", text="late", limit=100)
    assert store.get_execution_log(execution_id) == ("final\n", False)
    with pytest.raises(NotFound):
        store.append_output(999_999, agent="a1", text="x", limit=100)
