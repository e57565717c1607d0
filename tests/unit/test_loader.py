"""The plugin loader: listing actions from source, binding arguments, discovery, loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from octopus.core.models import ActionSpec, ParamSpec
from octopus.errors import PluginError
from octopus.plugins.importing import load_module, resolve_action
from octopus.plugins.loader import (
    BUILTIN_DIR,
    check_call,
    discover,
    inspect_source,
    sha256_of,
)

SOURCE = '''
"""A plugin."""
import os
from os.path import join

def plain(a, b):
    """Add two things.

    More text.
    """
    return a + b

async def fancy(
    x: int, /, y: "str" = "hi", *rest: float, flag: bool = False, need, **extra
) -> dict[str, int]:
    return {}

def _private():
    pass

class NotAnAction:
    def method(self):
        pass

def plain(a, b=2):
    return a
'''


def spec(name: str, source: str = SOURCE) -> ActionSpec:
    return {action.name: action for action in inspect_source(source, filename="x.py")}[name]


def test_inspect_lists_public_functions_in_order_and_last_definition_wins() -> None:
    names = [action.name for action in inspect_source(SOURCE, filename="x.py")]
    assert names == ["fancy", "plain"]
    assert spec("plain").params[1] == ParamSpec(
        name="b", kind="positional_or_keyword", default="2", required=False
    )


def test_inspect_records_kinds_annotations_defaults_and_return() -> None:
    fancy = spec("fancy")
    assert [(p.name, p.kind, p.annotation, p.default, p.required) for p in fancy.params] == [
        ("x", "positional_only", "int", None, True),
        ("y", "positional_or_keyword", "'str'", "'hi'", False),
        ("rest", "var_positional", "float", None, False),
        ("flag", "keyword_only", "bool", "False", False),
        ("need", "keyword_only", None, None, True),
        ("extra", "var_keyword", None, None, False),
    ]
    assert fancy.returns == "dict[str, int]"
    assert fancy.doc is None


def test_inspect_keeps_docstrings() -> None:
    source = 'def f():\n    """Add two things.\n\n    More text.\n    """\n'
    assert spec("f", source).doc == "Add two things.\n\nMore text."


def test_inspect_syntax_error_is_a_plugin_error_naming_file_and_line() -> None:
    with pytest.raises(PluginError, match=r"broken\.py:2: syntax error"):
        inspect_source("def ok():\n    return (\n", filename="broken.py")


def test_inspect_nul_bytes_are_a_plugin_error() -> None:
    with pytest.raises(PluginError, match=r"nul\.py"):
        inspect_source("x = 1\x00", filename="nul.py")


def test_inspect_does_not_run_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').close()\ndef act():\n    pass\n"
    assert [a.name for a in inspect_source(source, filename="x.py")] == ["act"]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ([1, 2], {}, None),
        ([1], {"b": 2}, None),
        ([1, 2, 3], {}, "too many positional arguments"),
        ([1], {}, "missing a required argument: 'b'"),
        ([1, 2], {"c": 3}, "got an unexpected keyword argument 'c'"),
        ([1], {"a": 1, "b": 2}, "multiple values for argument 'a'"),
    ],
)
def test_check_call_plain(
    args: list[object], kwargs: dict[str, object], problem: str | None
) -> None:
    message = check_call(spec("plain", "def plain(a, b):\n    pass\n"), args, kwargs)
    if problem is None:
        assert message is None
    else:
        assert message is not None and message.startswith("plain(): ") and problem in message


def test_check_call_with_every_kind() -> None:
    fancy = spec("fancy")
    assert check_call(fancy, [1], {"need": 1}) is None
    assert check_call(fancy, [1, "a", 1.0, 2.0], {"need": 1, "other": 3}) is None
    assert "missing a required argument: 'need'" in (check_call(fancy, [1], {}) or "")
    assert "x" in (check_call(fancy, [], {"x": 1, "need": 1}) or "")


def test_sha256_of_is_hex() -> None:
    assert sha256_of(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_discover_picks_plugins_and_skips_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name in ("good.py", "_private.py", "not-ident.py", "9lives.py", "notes.txt", "ünï.py"):
        (folder / name).write_text("def a():\n    pass\n", encoding="utf-8")
    (folder / "adir.py").mkdir()
    outside = tmp_path / "outside.py"
    outside.write_text("def a():\n    pass\n", encoding="utf-8")
    (folder / "escape.py").symlink_to(outside)
    (folder / "dangling.py").symlink_to(tmp_path / "missing.py")
    (folder / "alias.py").symlink_to(folder / "good.py")
    (folder / "fifo.py").parent.joinpath("fifo.py")
    os.mkfifo(folder / "fifo.py")
    assert discover([folder]) == {"alias": folder / "alias.py", "good": folder / "good.py"}


def test_discover_later_dirs_override_and_missing_dirs_are_ignored(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "system.py").write_text("", encoding="utf-8")
    (second / "system.py").write_text("", encoding="utf-8")
    (first / "only.py").write_text("", encoding="utf-8")
    found = discover([first, second, tmp_path / "missing"])
    assert found == {"only": first / "only.py", "system": second / "system.py"}


def test_builtin_dir_holds_the_builtin_plugins() -> None:
    assert set(discover([BUILTIN_DIR])) == {"http", "shell", "system"}


def test_load_module_and_resolve_action(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        "from os.path import join\n"
        "from dataclasses import dataclass\n"
        "@dataclass\nclass Point:\n    x: int\n"
        "def act(x):\n    return Point(x).x\n"
        "def _hidden():\n    pass\n"
        "VALUE = 3\n",
        encoding="utf-8",
    )
    first, second = load_module(path, name="mine"), load_module(path, name="mine")
    assert first.__name__ != second.__name__
    assert resolve_action(first, "act")(5) == 5
    for bad, reason in [
        ("_hidden", "not a public action"),
        ("missing", "no action"),
        ("join", "not an action defined"),
        ("VALUE", "not an action defined"),
        ("../x", "not a public action"),
    ]:
        with pytest.raises(PluginError, match=reason):
            resolve_action(first, bad)


def test_load_module_errors_are_plugin_errors(tmp_path: Path) -> None:
    path = tmp_path / "boom.py"
    path.write_text("raise ValueError('nope')\n", encoding="utf-8")
    with pytest.raises(PluginError, match="boom: import failed: ValueError: nope"):
        load_module(path, name="boom")
    with pytest.raises(PluginError):
        load_module(tmp_path / "absent.py", name="absent")
