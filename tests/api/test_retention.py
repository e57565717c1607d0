"""The retention loop: it prunes at start and on its interval, logs and audits what went;
``OCTOPUS_RETENTION_DAYS=0`` keeps everything, and a bad value stops the server at start."""

from __future__ import annotations

import logging
from datetime import timedelta
from itertools import pairwise

import pytest
from fastapi.testclient import TestClient

from octopus.config import ServerSettings
from octopus.core.audit import AuditAction, AuditFilter
from octopus.core.enums import Ownership, TaskStatus, TaskType
from octopus.core.models import TaskSpec
from octopus.errors import ConfigError, NotFound
from octopus.server.app import create_app
from octopus.server.clock import utcnow
from octopus.server.retention import Retention
from octopus.server.state import ServerState
from tests.unit.waiting import wait_for


def _old_finished_task(state: ServerState, days: float) -> int:
    """An ``all`` task with no agent online fails at once, ``days`` ago."""
    spec = TaskSpec(name="old", plugin="example", action="hello", ownership=Ownership.ALL)
    created = state.store.create_task(spec, now=utcnow() - timedelta(days=days))
    assert created.task.status is TaskStatus.FAILED
    return created.task.id


def _gone(state: ServerState, task_id: int) -> bool:
    try:
        state.store.get_task(task_id)
    except NotFound:
        return True
    return False


def test_the_server_prunes_old_history_in_the_background(
    settings: ServerSettings, state: ServerState, caplog: pytest.LogCaptureFixture
) -> None:
    old, recent = _old_finished_task(state, 40), _old_finished_task(state, 2)
    with caplog.at_level(logging.INFO), TestClient(create_app(settings, state)):
        wait_for(lambda: _gone(state, old), timeout=10, message="the old task to be pruned")
    assert not _gone(state, recent)
    assert "Pruned finished history" in caplog.text
    [entry], _ = state.store.list_audit(AuditFilter(action=AuditAction.HISTORY_PRUNED))
    assert (entry.actor, entry.subject) == ("server", "history")
    assert (entry.detail["tasks"], entry.detail["runs"]) == (1, 1)


def test_retention_days_zero_keeps_everything(state: ServerState) -> None:
    old = _old_finished_task(state, 4000)
    pruned = Retention(state.store, days=0).tick(utcnow())
    assert (pruned.tasks, pruned.runs) == (0, 0)
    assert not _gone(state, old)
    assert state.store.list_audit(AuditFilter()) == ([], 0)


def test_a_pass_goes_batch_by_batch_until_a_short_batch(state: ServerState) -> None:
    ids = [_old_finished_task(state, 40) for _ in range(5)]
    pruned = Retention(state.store, days=30, batch_size=2).tick(utcnow())
    assert (pruned.tasks, pruned.runs) == (5, 5)
    assert all(_gone(state, task_id) for task_id in ids)


@pytest.mark.parametrize("value", ["-1", "forever", "1.5"])
def test_a_bad_retention_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OCTOPUS_RETENTION_DAYS", value)
    with pytest.raises(ConfigError, match="OCTOPUS_RETENTION_DAYS"):
        ServerSettings.load()


def test_retention_days_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServerSettings.load().retention_days == 30
    monkeypatch.setenv("OCTOPUS_RETENTION_DAYS", "0")
    assert ServerSettings.load().retention_days == 0


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_max_runs_per_task_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OCTOPUS_RETENTION_MAX_RUNS_PER_TASK", value)
    with pytest.raises(ConfigError, match="OCTOPUS_RETENTION_MAX_RUNS_PER_TASK"):
        ServerSettings.load()


def test_max_runs_per_task_prunes_without_an_age_limit(state: ServerState) -> None:
    spec = TaskSpec(
        name="every", plugin="example", action="hello", type=TaskType.INTERVAL,
        interval_seconds=10, ownership=Ownership.ALL,
    )  # fmt: skip
    start = utcnow() - timedelta(minutes=5)
    task = state.store.create_task(spec, now=start).task
    fires = [start + timedelta(seconds=10 * k) for k in range(5)]
    for fire, following in pairwise(fires):
        state.store.fire_run(task.id, fire_time=fire, next_run_at=following, now=fire)
    pruned = Retention(state.store, days=0, max_runs_per_task=1).tick(utcnow())
    assert (pruned.tasks, pruned.runs) == (0, 3)
    assert len(state.store.list_runs(task.id)) == 1
