"""The command line without a server: help, version, and one-line errors with exit codes."""

from __future__ import annotations

import pytest

from octopus import __version__
from octopus.cli.main import run


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in (
        "OCTOPUS_SERVER_URL",
        "OCTOPUS_ADMIN_TOKEN",
        "OCTOPUS_SERVER_PORT",
        "OCTOPUS_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["server", "--help"],
        ["agent", "--help"],
        ["agent", "list", "--help"],
        ["task", "--help"],
        ["task", "create", "--help"],
        ["task", "wait", "--help"],
        ["plugin", "--help"],
        ["plugin", "run", "--help"],
    ],
)
def test_help_exits_zero(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 0
    assert "Usage" in capsys.readouterr().out


def test_help_names_environment_variables(capsys: pytest.CaptureFixture[str]) -> None:
    run(["server", "--help"])
    out = capsys.readouterr().out
    for name in ("OCTOPUS_SERVER_PORT", "OCTOPUS_DATA_DIR", "OCTOPUS_DATABASE_URL"):
        assert name in out
    run(["task", "list", "--help"])
    out = capsys.readouterr().out
    assert "OCTOPUS_SERVER_URL" in out and "OCTOPUS_ADMIN_TOKEN" in out
    assert "admin.token" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"octopus {__version__}"


def test_no_arguments_shows_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([]) == 2


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("error: "), err
    return err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["task", "create"], "PLUGIN.ACTION"),
        (["task", "create", "noaction"], "PLUGIN.ACTION"),
        (["task", "create", "a.b", "--kwargs", "[1]"], "--kwargs"),
        (["task", "show", "x"], "ID"),
        (["task", "bogus"], "bogus"),
        (["server", "--port", "0"], "--port"),
        (["server", "--log-level", "LOUD"], "--log-level"),
        (["agent", "--labels", "nokey"], "--labels"),
        (["agent", "--concurrency", "0"], "--concurrency"),
    ],
)
def test_usage_and_flag_errors_are_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) in (1, 2)
    assert fragment in _one_error_line(capsys)


def test_bad_env_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OCTOPUS_SERVER_PORT", "99999")
    assert run(["server"]) == 1
    assert "OCTOPUS_SERVER_PORT" in _one_error_line(capsys)


def test_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["task", "list", "--server", "http://127.0.0.1:9"]) == 1
    assert "cannot reach server at http://127.0.0.1:9" in _one_error_line(capsys)
