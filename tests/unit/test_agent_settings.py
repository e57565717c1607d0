"""The agent's claim-ahead setting: default, flag, environment, and one-line refusals."""

from __future__ import annotations

import pytest

from octopus.agent.slim import FIELDS
from octopus.cli.main import run
from octopus.config import AgentSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("OCTOPUS_PREFETCH", "OCTOPUS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("error: "), err
    return err


def test_prefetch_defaults_to_256_and_crosses_into_the_slim_agent() -> None:
    assert AgentSettings.load().prefetch == 256
    assert AgentSettings.load(prefetch=0).prefetch == 0
    assert "prefetch" in FIELDS


def test_prefetch_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCTOPUS_PREFETCH", "7")
    assert AgentSettings.load().prefetch == 7


@pytest.mark.parametrize("value", ["-1", "513", "many"])
def test_a_bad_prefetch_flag_is_refused_naming_it(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["agent", "--prefetch", value]) in (1, 2)
    assert "--prefetch" in _one_error_line(capsys)


def test_a_negative_prefetch_variable_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OCTOPUS_PREFETCH", "-1")
    assert run(["agent"]) == 1
    assert "OCTOPUS_PREFETCH: Input should be greater than or equal to 0" in _one_error_line(capsys)


def test_agent_help_names_the_prefetch_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["agent", "--help"]) == 0
    assert "OCTOPUS_PREFETCH" in capsys.readouterr().out
