"""Following a capture file while an execution writes to it."""

from __future__ import annotations

from pathlib import Path

from octopus.agent.executor import OutputFollower


def test_reads_only_what_is_new_and_keeps_split_characters_whole(tmp_path: Path) -> None:
    path = tmp_path / "capture.log"
    follower = OutputFollower(path)
    assert follower.read_new() == ""
    encoded = "héllo\n".encode()
    path.write_bytes(encoded[:2])
    assert follower.read_new() == "h"
    with path.open("ab") as handle:
        handle.write(encoded[2:])
    assert follower.read_new() == "éllo\n"
    assert follower.read_new() == ""


def test_nul_bytes_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "capture.log"
    path.write_bytes(b"a\x00b")
    assert OutputFollower(path).read_new() == "a\ufffdb"
