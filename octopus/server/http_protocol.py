"""Uvicorn's httptools protocol, with each answer sent in one write instead of two.

Uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, and its body on ``http.response.body``: two ``send`` calls, two TCP
segments, and on loopback two wake-ups of the client, which reads the head and waits for the
rest. Measured on a claim's answer (the step between a new task and its agent), the head's
write alone took 0.2 ms of the 0.35 ms the answer took to leave. Here a response's head waits
for the first write after it, its body's, and both leave in one ``send``; a head that nothing
follows within the event loop's turn (an empty answer that writes no body) leaves on its own
at the end of that turn. Writes keep their order either way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/"


class _CoalescingTransport:
    """A transport that holds a response's head until its body is written, then sends both
    in one write (or sends the head alone at the end of the loop's turn)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head = b""

    def write(self, data: bytes) -> None:
        if self._head:
            data, self._head = self._head + data, b""
        elif data.startswith(_HEAD):
            self._head = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._head)

    def close(self) -> None:
        self._flush()  # an answer written just before closing still goes out
        self._transport.close()

    def _flush(self) -> None:
        if self._head:
            head, self._head = self._head, b""
            self._transport.write(head)

    def __getattr__(self, name: str) -> Any:
        # Everything else (reading, flow control, extra info) is the real transport's.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` over a transport that sends a response's head with its body
    (pass it as ``uvicorn.Config(http=...)``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing: Any = _CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)
