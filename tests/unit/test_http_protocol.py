"""A response's head leaves with its body in one write; a head alone still leaves, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from octopus.server.http_protocol import _CoalescingTransport


class _Recording:
    """The transport under the coalescing one: what it was asked to send, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def _coalescing() -> tuple[_Recording, _CoalescingTransport]:
    """A coalescing transport on the running loop, over a recording one."""
    sent = _Recording()
    return sent, _CoalescingTransport(sent, asyncio.get_running_loop())  # type: ignore[arg-type]


def test_a_head_and_its_body_leave_in_one_write() -> None:
    asyncio.run(_head_and_body())


async def _head_and_body() -> None:
    sent, transport = _coalescing()
    transport.write(HEAD)
    assert sent.writes == []
    assert transport.get_write_buffer_size() == len(HEAD)
    transport.write(b"{}")
    assert sent.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)  # the end-of-turn flush finds nothing left
    assert sent.writes == [HEAD + b"{}"]


def test_a_head_that_nothing_follows_leaves_at_the_end_of_the_turn() -> None:
    asyncio.run(_head_alone())


async def _head_alone() -> None:
    sent, transport = _coalescing()
    transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    await asyncio.sleep(0)
    assert sent.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    transport.write(b"more")  # not a head: straight out, after it
    assert sent.writes[-1] == b"more"


def test_closing_sends_a_held_head_first_and_the_rest_is_the_real_transports() -> None:
    asyncio.run(_closing())


async def _closing() -> None:
    sent, transport = _coalescing()
    transport.write(HEAD)
    transport.close()
    assert sent.writes == [HEAD]
    assert sent.closed
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8000)
