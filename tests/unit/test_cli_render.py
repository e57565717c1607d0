"""Text forms used by the command line: action signatures and short JSON cells."""

from __future__ import annotations

from octopus.cli.render import short_json, signature
from octopus.plugins.loader import inspect_source
from octopus.schemas.plugins import ActionRead

SOURCE = """
def plain(a, b=2): ...
def typed(a: int, /, b: str = "x", *rest: int, flag: bool = False, **extra) -> list[int]: ...
def keyword_only(*, name: str): ...
"""


def _signatures() -> list[str]:
    specs = inspect_source(SOURCE, filename="demo.py")
    return [signature(ActionRead.model_validate(spec)) for spec in specs]


def test_signatures_read_like_python() -> None:
    assert _signatures() == [
        "plain(a, b=2)",
        "typed(a: int, /, b: str = 'x', *rest: int, flag: bool = False, **extra) -> list[int]",
        "keyword_only(*, name: str)",
    ]


def test_short_json_keeps_unicode_and_cuts_long_values() -> None:
    assert short_json({"u": "\u00fc", "n": None}) == '{"u":"\u00fc","n":null}'
    cut = short_json(list(range(100)), limit=20)
    assert len(cut) == 20 and cut.endswith("...")
