"""A light HTTP/1.1 keep-alive client over asyncio streams, for thousands of simulated agents.

httpx costs the bench process more CPU per request than the server spends answering; this
client sends one request at a time on one connection and reads a ``Content-Length`` body,
which is all the agent protocol needs.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import orjson


class WireError(Exception):
    """The server answered something this client cannot read, or closed the connection."""


class LightConnection:
    """One keep-alive connection to a server, for JSON POSTs with a bearer token."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only plain http:// URLs are supported, not {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def post(self, path: str, body: Any, token: str) -> tuple[int, Any]:
        """POST ``body`` as JSON and return the status code and the decoded JSON answer."""
        reader, writer = await self._connect()
        payload = orjson.dumps(body)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        writer.write(head.encode() + payload)
        try:
            return await self._read_response(reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise WireError(f"connection lost: {exc}") from exc

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> tuple[int, Any]:
        header = await reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise WireError("response without Content-Length")
        data = await reader.readexactly(length) if length else b""
        return status, orjson.loads(data) if data else None

    async def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass
