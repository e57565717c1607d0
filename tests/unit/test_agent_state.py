"""The agent's state dir: a private token file that survives restarts."""

from __future__ import annotations

import stat
from pathlib import Path

from octopus.agent.state import AgentState


def test_no_token_before_enrolling(tmp_path: Path) -> None:
    assert AgentState(tmp_path / "state").load_token() is None


def test_token_is_saved_0600_and_reused(tmp_path: Path) -> None:
    root = tmp_path / "state"
    AgentState(root).save_token("tok-123")
    assert stat.S_IMODE((root / "token").stat().st_mode) == 0o600
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert AgentState(root).load_token() == "tok-123"
    assert sorted(p.name for p in root.iterdir()) == ["plugins", "token", "work"]


def test_saving_again_replaces_the_token(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    state.save_token("first")
    state.save_token("second")
    assert state.load_token() == "second"
    state.forget_token()
    assert state.load_token() is None


def test_an_empty_token_file_means_no_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n", encoding="utf-8")
    assert AgentState(tmp_path).load_token() is None
