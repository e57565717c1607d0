"""Parsing of command-line values: PLUGIN.ACTION, JSON-or-string arguments, kwargs."""

from __future__ import annotations

import pytest
import typer

from octopus.cli.arguments import json_or_string, parse_args, parse_kwargs, split_action


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("echo.echo", ("echo", "echo")), ("my_plugin.run_it", ("my_plugin", "run_it"))],
)
def test_split_action(raw: str, expected: tuple[str, str]) -> None:
    assert split_action(raw) == expected


@pytest.mark.parametrize("raw", ["echo", "echo.", ".echo", "a.b.c", "1x.y", "x.y-z", ""])
def test_split_action_refuses_bad_names(raw: str) -> None:
    with pytest.raises(typer.BadParameter, match=r"PLUGIN\.ACTION"):
        split_action(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1),
        ("2.5", 2.5),
        ("true", True),
        ("null", None),
        ('"quoted"', "quoted"),
        ('{"a": [1, null]}', {"a": [1, None]}),
        ("word", "word"),
        ("h\u00e9llo", "h\u00e9llo"),
        ("", ""),
        ("{not json", "{not json"),
    ],
)
def test_json_or_string(raw: str, expected: object) -> None:
    assert json_or_string(raw) == expected


def test_parse_args_puts_arg_json_first() -> None:
    assert parse_args(["3", "x"], '[1, {"two": 2}]') == [1, {"two": 2}, 3, "x"]
    assert parse_args([], None) == []


@pytest.mark.parametrize("raw", ["{}", "1", "not json"])
def test_parse_args_refuses_arg_json_that_is_not_a_list(raw: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_args([], raw)


def test_parse_kwargs() -> None:
    assert parse_kwargs('{"k": null, "u": "\\u00fc"}') == {"k": None, "u": "\u00fc"}
    assert parse_kwargs(None) == {}


@pytest.mark.parametrize("raw", ["[1]", "3", "{bad"])
def test_parse_kwargs_refuses_non_objects(raw: str) -> None:
    with pytest.raises(typer.BadParameter) as info:
        parse_kwargs(raw)
    assert info.value.param_hint == "--kwargs"
