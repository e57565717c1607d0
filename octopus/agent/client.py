"""The agent's HTTP client for the agent API: enroll, heartbeat, claim, report, download."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import orjson
from pydantic import BaseModel

from octopus import __version__
from octopus.agent.long_poll import Answer, LongPoll
from octopus.agent.plugin_cache import PluginDownload
from octopus.errors import AuthError, Conflict, Fenced, NotFound, OctopusError
from octopus.schemas.agents import (
    ClaimRequest,
    ClaimResponse,
    EnrollRequest,
    EnrollResponse,
    ExecutionReport,
    Heartbeat,
    HeartbeatAck,
    OutputChunk,
    ReportAck,
)
from octopus.schemas.reports import ReleaseAck, ReleaseRequest, ReportBatchAck

logger = logging.getLogger(__name__)

SHA256_HEADER = "X-Octopus-Sha256"
_USER_AGENT = f"octopus-agent/{__version__}"
CLAIM_MARGIN_SECONDS = 10.0
"""Extra read time on a long-poll claim beyond ``wait_seconds``, so the wait is never cut."""

_Model = TypeVar("_Model", bound=BaseModel)


class ServerUnavailable(OctopusError):
    """The server could not be reached or answered 5xx/429: retry later with backoff."""


class RequestRefused(OctopusError):
    """The server refused a request for good (a 4xx other than 401/403/404/409)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code


class AgentClient:
    """One aiohttp session for every call an agent makes but the long-poll claim, which has
    connections of its own (``agent.long_poll``); methods return wire models.

    aiohttp rather than httpx: on the agent's hot path (claims and report batches, about one
    request per two executions at full speed) httpx cost ~1.3 ms of CPU per request here
    against ~0.35 ms, the larger part of the agent's whole CPU per execution. Like httpx, it
    honours the ``HTTP(S)_PROXY`` and ``NO_PROXY`` environment, read once: aiohttp's own
    ``trust_env`` reads it (and ``.netrc``) in a worker thread on every request.
    """

    def __init__(
        self, server_url: str, *, token: str | None = None, timeout_seconds: float = 30.0
    ) -> None:
        """Prepare the client; the session opens on the first call (it needs a running loop).

        Args:
            server_url: Base URL of the server, for example ``http://localhost:8000``.
            token: The agent token, if already enrolled.
            timeout_seconds: Timeout of every call except the long-poll claim.
        """
        self.token = token
        self._base = server_url.rstrip("/") + "/api/v1"
        self._timeout_seconds = timeout_seconds
        self._connect_seconds = min(timeout_seconds, 10.0)
        self._proxy = _env_proxy(self._base)
        self._http: aiohttp.ClientSession | None = None
        self._long_poll = _long_poll(self._base, self._proxy, self._connect_seconds)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                headers={"User-Agent": _USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                proxy=self._proxy,
            )
        return self._http

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._long_poll is not None:
            self._long_poll.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def enroll(self, join_token: str, request: EnrollRequest) -> EnrollResponse:
        """Enroll with the join token; returns the agent's own token.

        Raises:
            AuthError: The join token is refused.
            Conflict: The name is already enrolled.
        """
        response = await self._post("/agents/enroll", request, token=join_token)
        return _parse(response, EnrollResponse)

    async def heartbeat(self, name: str, heartbeat: Heartbeat) -> HeartbeatAck:
        """Send a heartbeat; the answer lists executions to stop and current plugin versions."""
        response = await self._post(f"/agents/{name}/heartbeat", heartbeat)
        return _parse(response, HeartbeatAck)

    async def claim(self, name: str, request: ClaimRequest) -> ClaimResponse:
        """Long-poll for up to ``request.slots`` executions and for cancellations."""
        seconds = max(self._timeout_seconds, request.wait_seconds + CLAIM_MARGIN_SECONDS)
        path = f"/agents/{name}/claim"
        if self._long_poll is None:  # through a proxy
            response = await self._post(path, request, timeout_seconds=seconds)
            return _parse(response, ClaimResponse)
        content = request.model_dump_json().encode("utf-8")
        try:
            response = await self._long_poll.post(
                path, content, bearer=self.token, timeout_seconds=seconds
            )
        except (OSError, TimeoutError) as exc:  # ConnectionBroken is an OSError
            raise ServerUnavailable(f"POST {path}: {type(exc).__name__}: {exc}") from exc
        _raise_for_status("POST", path, response)
        return _parse(response, ClaimResponse)

    async def report(self, execution_id: int, report: ExecutionReport) -> ReportAck:
        """Report an outcome.

        Raises:
            Fenced: The attempt no longer holds its lease; never retry this report.
        """
        try:
            response = await self._post(f"/executions/{execution_id}/report", report)
        except Conflict as exc:
            raise Fenced(exc.message) from None
        return _parse(response, ReportAck)

    async def report_many(self, name: str, encoded: Sequence[bytes]) -> ReportBatchAck:
        """Report several outcomes in one request; the answer has one result per report.

        Args:
            name: This agent's name.
            encoded: Each a ``BatchedReport`` as JSON (the caller encodes each once, to know
                the size of a batch before sending it).
        """
        content = b'{"reports":[' + b",".join(encoded) + b"]}"
        response = await self._send("POST", f"/agents/{name}/reports", content=content)
        return _parse(response, ReportBatchAck)

    async def release(self, name: str, request: ReleaseRequest) -> ReleaseAck:
        """Hand back executions claimed ahead and never started; one result per execution."""
        response = await self._post(f"/agents/{name}/release", request)
        return _parse(response, ReleaseAck)

    async def send_output(self, execution_id: int, chunk: OutputChunk) -> None:
        """Send new output of a running execution.

        Raises:
            Fenced: The attempt no longer holds its lease (or already reported).
        """
        try:
            await self._post(f"/executions/{execution_id}/output", chunk)
        except Conflict as exc:
            raise Fenced(exc.message) from None

    async def download_plugin(self, name: str) -> PluginDownload:
        """The current source of plugin ``name`` with its signed version (the plugin cache
        verifies both)."""
        response = await self._send("GET", f"/plugins/{name}/source")
        try:
            version = int(response.headers.get("X-Octopus-Plugin-Version", "0"))
        except ValueError:
            version = 0  # refused by the signature check, which covers the version
        return PluginDownload(
            data=response.content,
            version=version,
            signature=response.headers.get("X-Octopus-Signature"),
        )

    async def _post(
        self,
        path: str,
        body: BaseModel,
        *,
        token: str | None = None,
        timeout_seconds: float | None = None,
    ) -> Answer:
        content = body.model_dump_json().encode("utf-8")
        return await self._send(
            "POST", path, content=content, token=token, timeout_seconds=timeout_seconds
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        token: str | None = None,
        timeout_seconds: float | None = None,
    ) -> Answer:
        bearer = token if token is not None else self.token
        headers = {"Content-Type": "application/json"} if content is not None else {}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        timeout = aiohttp.ClientTimeout(
            total=timeout_seconds or self._timeout_seconds, connect=self._connect_seconds
        )
        try:
            async with self._session().request(
                method, self._base + path, data=content, headers=headers, timeout=timeout
            ) as response:
                answer = Answer(
                    status=response.status,
                    reason=response.reason or "",
                    headers=response.headers,
                    content=await response.read(),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        _raise_for_status(method, path, answer)
        return answer


def _long_poll(base: str, proxy: str | None, connect_seconds: float) -> LongPoll | None:
    """The claims' own connections, unless a proxy is in the way (then aiohttp takes them);
    a URL they cannot serve is left to aiohttp, which explains it at the first call."""
    if proxy is not None:
        return None
    try:
        return LongPoll(base, user_agent=_USER_AGENT, connect_seconds=connect_seconds)
    except ValueError:
        return None


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url``, if any."""
    parts = urlsplit(url)
    if parts.hostname is None or proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme)


def _raise_for_status(method: str, path: str, response: Answer) -> None:
    code = response.status
    if code < 400:
        return
    message = f"{method} {path}: {_message(response)}"
    if code >= 500 or code == 429:
        raise ServerUnavailable(f"HTTP {code}: {message}")
    if code in (401, 403):
        raise AuthError(message)
    if code == 404:
        raise NotFound("resource", path)
    if code == 409:
        raise Conflict(message)
    raise RequestRefused(code, message)


def _message(response: Answer) -> str:
    try:
        body = orjson.loads(response.content)
    except ValueError:
        return response.content[:500].decode("utf-8", "replace") or response.reason
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:500]
    return str(body)[:500]


def _parse(response: Answer, model: type[_Model]) -> _Model:
    try:
        return model.model_validate_json(response.content)
    except ValueError as exc:
        raise ServerUnavailable(f"unexpected answer from the server: {exc}") from exc
