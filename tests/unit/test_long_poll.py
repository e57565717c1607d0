"""The agent's long-poll connections against a raw loopback server that answers as told."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from octopus.agent import long_poll
from octopus.agent.client import AgentClient, ServerUnavailable
from octopus.agent.long_poll import ConnectionBroken, LongPoll
from octopus.errors import AuthError
from octopus.schemas.agents import ClaimRequest

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
"""How the server answers one request: writes (or not) and may close the connection."""


def sends(*chunks: bytes, close: bool = False) -> Reply:
    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        if close:
            writer.close()

    return reply


async def never(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
    """No answer: waits until the client closes the connection."""
    await reader.read()
    raise ConnectionResetError


@dataclass
class RawServer:
    """Answers the n-th request with ``replies[n]``; records each request and connection."""

    replies: list[Reply]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    ended: int = 0
    """Connections the client closed (end of data seen)."""
    url: str = ""
    poll: LongPoll = field(init=False)
    """The client under test, closed with the server."""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                await self.replies[len(self.requests) - 1](reader, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            self.ended += 1
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_server(*replies: Reply) -> AsyncIterator[RawServer]:
    server = RawServer(list(replies))
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}/base/api/v1"
    async with listener:
        server.poll = LongPoll(server.url, user_agent="test-agent", connect_seconds=2.0)
        try:
            yield server
        finally:
            server.poll.close()


def test_answers_are_read_whole_on_one_kept_alive_connection() -> None:
    async def scenario() -> None:
        async with raw_server(sends(OK), sends(OK[:40], OK[40:])) as server:
            poll = server.poll
            first = await poll.post("/x", b'{"a":1}', bearer="tok", timeout_seconds=5)
            second = await poll.post("/y", b"{}", bearer=None, timeout_seconds=5)
        assert (first.status, first.reason, first.content) == (200, "OK", b"{}")
        assert first.headers["content-type"] == "application/json"  # any case
        assert second.content == b"{}"
        assert server.connections == 1
        request = server.requests[0]
        assert request.startswith(b"POST /base/api/v1/x HTTP/1.1\r\n")
        for header in (
            b"Host: 127.0.0.1:",
            b"User-Agent: test-agent\r\n",
            b"Authorization: Bearer tok\r\n",
            b"Content-Type: application/json\r\n",
            b"Content-Length: 7\r\n",
        ):
            assert header in request
        assert request.endswith(b'\r\n\r\n{"a":1}')
        assert b"Authorization" not in server.requests[1]

    asyncio.run(scenario())


def test_a_chunked_answer_is_joined() -> None:
    chunked = (
        b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3\r\n{"m\r\n6\r\n":"x"}\r\n0\r\n\r\n'
    )

    async def scenario() -> None:
        async with raw_server(sends(chunked)) as server:
            answer = await server.poll.post("/x", b"{}", bearer=None, timeout_seconds=5)
        assert (answer.status, answer.reason, answer.content) == (409, "Conflict", b'{"m":"x"}')

    asyncio.run(scenario())


def test_connection_close_and_a_server_that_closed_while_idle_mean_a_new_connection() -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"

    async def scenario() -> None:
        # First: the server says it closes. Second: it closes without saying so, as a
        # keep-alive timeout does; the third call finds that connection dead and opens one.
        async with raw_server(sends(close, close=True), sends(OK, close=True), sends(OK)) as srv:
            poll = srv.poll
            for _ in range(2):
                assert (await poll.post("/x", b"{}", bearer=None, timeout_seconds=5)).status == 200
            await asyncio.sleep(0.05)  # the close reaches the client
            assert (await poll.post("/x", b"{}", bearer=None, timeout_seconds=5)).status == 200
        assert srv.connections == 3
        assert len(srv.requests) == 3

    asyncio.run(scenario())


def test_a_request_on_a_connection_closed_unseen_is_sent_once_more_on_a_new_one() -> None:
    async def scenario() -> None:
        async with raw_server(sends(OK), sends(close=True), sends(OK)) as server:
            poll = server.poll
            await poll.post("/x", b"{}", bearer=None, timeout_seconds=5)
            # The server drops the second request unanswered, as one that closed the idle
            # connection just as the request left would: no byte of an answer came back.
            answer = await poll.post("/y", b"{}", bearer=None, timeout_seconds=5)
        assert answer.status == 200
        assert server.connections == 2
        assert [request.split(b" ")[1] for request in server.requests] == [
            b"/base/api/v1/x",
            b"/base/api/v1/y",
            b"/base/api/v1/y",
        ]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (sends(OK[:30], close=True), "closed the connection"),
        (sends(b"SMTP ready\r\n\r\n"), "not valid HTTP"),
    ],
    ids=["cut-mid-answer", "not-http"],
)
def test_a_broken_answer_fails_and_is_never_sent_again(reply: Reply, problem: str) -> None:
    async def scenario() -> None:
        async with raw_server(sends(OK), reply, sends(OK)) as server:
            poll = server.poll
            await poll.post("/x", b"{}", bearer=None, timeout_seconds=5)
            with pytest.raises(ConnectionBroken, match=problem):
                await poll.post("/x", b"{}", bearer=None, timeout_seconds=5)
            assert len(server.requests) == 2
            assert (await poll.post("/x", b"{}", bearer=None, timeout_seconds=5)).status == 200
        assert server.connections == 2

    asyncio.run(scenario())


def test_an_answer_over_the_limit_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(long_poll, "MAX_ANSWER_BYTES", 10)
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + b"x" * 11

    async def scenario() -> None:
        async with raw_server(sends(big)) as server:
            with pytest.raises(ConnectionBroken, match="over 10 bytes"):
                await server.poll.post("/x", b"{}", bearer=None, timeout_seconds=5)

    asyncio.run(scenario())


def test_a_call_timed_out_or_cancelled_closes_its_connection() -> None:
    async def scenario() -> None:
        async with raw_server(never, never, sends(OK)) as server:
            poll = server.poll
            with pytest.raises(TimeoutError):
                await poll.post("/x", b"{}", bearer=None, timeout_seconds=0.2)
            call = asyncio.create_task(poll.post("/x", b"{}", bearer=None, timeout_seconds=5))
            async with asyncio.timeout(5):
                while len(server.requests) < 2:  # noqa: ASYNC110 (the server records it)
                    await asyncio.sleep(0.01)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert (await poll.post("/x", b"{}", bearer=None, timeout_seconds=5)).status == 200
            await asyncio.sleep(0.05)
            assert server.ended == 2  # neither answer can arrive on a connection used again
        assert server.connections == 3

    asyncio.run(scenario())


def test_only_http_urls_with_a_host() -> None:
    for url in ("ftp://host/api/v1", "http:///api/v1", "localhost:8000"):
        with pytest.raises(ValueError, match="not an http"):
            LongPoll(url, user_agent="test-agent", connect_seconds=2.0)


def test_agent_claims_map_failures_as_every_other_call() -> None:
    unavailable = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}"
    refused = b'HTTP/1.1 401 Unauthorized\r\nContent-Length: 17\r\n\r\n{"message":"who"}'
    claim = ClaimRequest(slots=1, wait_seconds=0)

    async def scenario() -> None:
        async with raw_server(sends(unavailable), sends(refused)) as server:
            client = AgentClient(server.url.removesuffix("/api/v1"), token="t" * 20)
            with pytest.raises(ServerUnavailable, match="HTTP 503"):
                await client.claim("a1", claim)
            with pytest.raises(AuthError, match="who"):
                await client.claim("a1", claim)
            await client.aclose()
        assert server.requests[0].startswith(b"POST /base/api/v1/agents/a1/claim HTTP/1.1")
        nobody = AgentClient(server.url.removesuffix("/api/v1"), token="t" * 20)
        with pytest.raises(ServerUnavailable, match="agents/a1/claim"):
            await nobody.claim("a1", claim)  # the server is gone: refused
        await nobody.aclose()

    asyncio.run(scenario())


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "octopus test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), True
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_verifies_the_server_against_the_trusted_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)

    async def scenario(trusted: bool) -> int:
        server = RawServer([sends(OK)])
        listener = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=context)
        port = listener.sockets[0].getsockname()[1]
        async with listener:
            with monkeypatch.context() as env:
                if trusted:  # as an operator trusts a private CA: OpenSSL's SSL_CERT_FILE
                    env.setenv("SSL_CERT_FILE", str(cert_file))
                poll = LongPoll(
                    f"https://127.0.0.1:{port}/api/v1", user_agent="t", connect_seconds=2.0
                )
            try:
                return (await poll.post("/x", b"{}", bearer=None, timeout_seconds=5)).status
            finally:
                poll.close()

    assert asyncio.run(scenario(trusted=True)) == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(scenario(trusted=False))
