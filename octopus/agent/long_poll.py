"""The agent's long-poll claims over kept-alive HTTP/1.1 connections of its own, read with
httptools (the parser uvicorn uses).

A claim's answer is the step between a new task and its worker. Between its bytes arriving
and the agent holding them, aiohttp's response machinery (its connector, timers, stream
reader, response object and the turns of the event loop they take) cost 0.16-0.21 ms of a
dispatch after an idle pause here (traced, 400 dispatches, p50); a connection that feeds
the bytes to the parser as they arrive and resolves one future when the message is whole
takes a fraction of that. Only a direct connection: through a proxy, the claim goes through
aiohttp as every other call does.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""The largest answer accepted (a claim of 256 executions with large arguments is far below)."""


class ConnectionBroken(ConnectionError):
    """The connection closed, or the server's answer was not valid HTTP."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A server's whole answer to one request (headers are case-insensitive)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    content: bytes


class _Exchange(asyncio.Protocol):
    """One connection: writes a request, parses its answer as the bytes arrive."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[Answer] | None = None
        self._reason = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._size = 0
        self.received = False
        """Whether any byte of the current answer arrived (a request on a connection that the
        server closed while it was idle fails with none, and may be sent again)."""
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        """Write ``request`` and return the future of its answer."""
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._reason, self._headers, self._body, self._size = b"", [], [], 0
        self.received = False
        self._transport.write(request)
        return self._answer

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"the server's answer is not valid HTTP: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionBroken(f"the server closed the connection ({exc or 'end of data'})"))

    # httptools callbacks

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER_BYTES:
            self._fail(ConnectionBroken(f"the answer is over {MAX_ANSWER_BYTES} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer = Answer(
            status=self._parser.get_status_code(),
            reason=self._reason.decode("latin-1"),
            headers=CIMultiDictProxy(CIMultiDict(self._headers)),
            content=b"".join(self._body),
        )
        if not self._parser.should_keep_alive():
            self.close()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(answer)

    def _fail(self, error: ConnectionBroken) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()


class LongPoll:
    """POSTs to one server over connections of its own, kept alive between calls.

    One call per connection at a time; a call finding no idle connection opens one. A call
    that fails, times out or is cancelled closes its connection (its answer may still come).
    """

    def __init__(self, server_url: str, *, user_agent: str, connect_seconds: float) -> None:
        """Prepare for ``server_url`` (``http`` or ``https``); nothing connects until a call.

        Raises:
            ValueError: The URL is not an http or https URL with a host.
        """
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {server_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        host = parts.netloc.rpartition("@")[2]  # never credentials in the Host header
        self._head = f"Host: {host}\r\nUser-Agent: {user_agent}\r\n"
        self._connect_seconds = connect_seconds
        self._idle: list[_Exchange] = []

    async def post(
        self, path: str, body: bytes, *, bearer: str | None, timeout_seconds: float
    ) -> Answer:
        """POST ``body`` (JSON) to ``path`` below the server URL and return the whole answer.

        Raises:
            ConnectionBroken: The connection closed or the answer is not valid HTTP.
            OSError: The server cannot be reached.
            TimeoutError: No whole answer within ``timeout_seconds``.
        """
        request = self._request(path, body, bearer)
        async with asyncio.timeout(timeout_seconds):
            while self._idle:  # kept alive: the server may have closed it while it was idle
                exchange = self._idle.pop()
                if exchange.closed:
                    continue
                try:
                    return await self._exchange(exchange, request)
                except ConnectionBroken:
                    if exchange.received:
                        raise
            return await self._exchange(await self._connect(), request)

    def close(self) -> None:
        """Close the idle connections (a call in flight closes its own when it ends)."""
        for exchange in self._idle:
            exchange.close()
        self._idle.clear()

    def _request(self, path: str, body: bytes, bearer: str | None) -> bytes:
        auth = f"Authorization: Bearer {bearer}\r\n" if bearer else ""
        head = (
            f"POST {self._prefix}{path} HTTP/1.1\r\n{self._head}{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode("latin-1") + body

    async def _connect(self) -> _Exchange:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_seconds):
            _, exchange = await loop.create_connection(
                _Exchange,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            )
        return exchange

    async def _exchange(self, exchange: _Exchange, request: bytes) -> Answer:
        try:
            answer = await exchange.send(request)
        except BaseException:
            exchange.close()
            raise
        if not exchange.closed:
            self._idle.append(exchange)
        return answer
