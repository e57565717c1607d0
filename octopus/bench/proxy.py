"""A loopback TCP proxy that injects network faults between agents and the server.

The chaos run points its agents at the proxy instead of the server and switches faults while
they work: added delay, a blackhole (bytes are held, nothing answers), resets (connections
are cut with RST), and dropped responses (the server handles the request, the answer never
reaches the agent: the case of a report that was stored but not acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from enum import StrEnum

CHUNK_BYTES = 64 * 1024
DELAY_SECONDS = 0.25
"""How late each chunk arrives under ``Fault.DELAY``."""


class Fault(StrEnum):
    """What the proxy does to the traffic right now."""

    NONE = "none"
    DELAY = "delay"
    BLACKHOLE = "blackhole"
    RESET = "reset"
    DROP_RESPONSES = "drop_responses"


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_port``; ``fault`` may change at any time.

    Runs its own event loop in a daemon thread, so it serves while the caller blocks.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._fault = Fault.NONE
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._connections: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)

    @property
    def fault(self) -> Fault:
        """The fault applied to the traffic from now on."""
        return self._fault

    @fault.setter
    def fault(self, fault: Fault) -> None:
        self._fault = fault
        flowing = self._flowing.clear if fault is Fault.BLACKHOLE else self._flowing.set
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(flowing)
        else:
            flowing()

    @property
    def url(self) -> str:
        """The URL agents use instead of the server's."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Listen on a free loopback port; return once it accepts connections."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def close(self) -> None:
        """Stop listening, cut every connection and end the thread."""
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await asyncio.sleep(0)  # let the aborted transports finish closing

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(client_w)
        try:
            await self._relay(client_r, client_w)
        finally:
            self._connections.discard(task)
            self._writers.discard(client_w)
            client_w.transport.abort()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.fault is Fault.RESET:
            _reset(client_w)
            return
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _reset(client_w)  # the server is down: the agent sees a refused connection
            return
        self._writers.add(upstream_w)
        try:
            await asyncio.gather(
                self._pump(client_r, upstream_w, client_w, to_client=False),
                self._pump(upstream_r, client_w, client_w, to_client=True),
            )
        finally:
            self._writers.discard(upstream_w)
            upstream_w.transport.abort()

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        *,
        to_client: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):  # one side went away: it ends
            while data := await source.read(CHUNK_BYTES):
                await self._flowing.wait()  # a blackhole holds the bytes until it is lifted
                if self.fault is Fault.RESET:
                    _reset(client)
                    return
                if self.fault is Fault.DELAY:
                    await asyncio.sleep(DELAY_SECONDS)
                if to_client and self.fault is Fault.DROP_RESPONSES:
                    _reset(client)  # the request was handled; its answer is lost
                    return
                sink.write(data)
                await sink.drain()
            if sink.can_write_eof():
                sink.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (linger 0) rather than FIN, as a crashed peer or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
