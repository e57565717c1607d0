"""The agent's HTTP client for the agent API: enroll, heartbeat, claim, report, download."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

import httpx
from pydantic import BaseModel

from octopus import __version__
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
from octopus.schemas.reports import ReportBatchAck

logger = logging.getLogger(__name__)

SHA256_HEADER = "X-Octopus-Sha256"
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
    """One ``httpx.AsyncClient`` for every call an agent makes; methods return wire models."""

    def __init__(
        self,
        server_url: str,
        *,
        token: str | None = None,
        timeout_seconds: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Prepare the client.

        Args:
            server_url: Base URL of the server, for example ``http://localhost:8000``.
            token: The agent token, if already enrolled.
            timeout_seconds: Timeout of every call except the long-poll claim.
            transport: An httpx transport, for tests.
        """
        self.token = token
        self._timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0))
        self._http = httpx.AsyncClient(
            base_url=server_url.rstrip("/") + "/api/v1",
            timeout=self._timeout,
            transport=transport,
            # Plain http needs no certificates; loading the CA bundle costs every agent 1.3 MB.
            verify=not server_url.startswith("http://"),
            headers={"User-Agent": f"octopus-agent/{__version__}"},
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

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
        timeout = self._timeout.read or 0.0
        read_timeout = max(timeout, request.wait_seconds + CLAIM_MARGIN_SECONDS)
        response = await self._post(
            f"/agents/{name}/claim",
            request,
            limits=httpx.Timeout(
                connect=self._timeout.connect,
                read=read_timeout,
                write=self._timeout.write,
                pool=self._timeout.pool,
            ),
        )
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
        limits: httpx.Timeout | None = None,
    ) -> httpx.Response:
        content = body.model_dump_json().encode("utf-8")
        return await self._send("POST", path, content=content, token=token, limits=limits)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        token: str | None = None,
        limits: httpx.Timeout | None = None,
    ) -> httpx.Response:
        bearer = token if token is not None else self.token
        headers = {"Content-Type": "application/json"} if content is not None else {}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            response = await self._http.request(
                method,
                path,
                content=content,
                headers=headers,
                timeout=limits if limits is not None else self._timeout,
            )
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        _raise_for_status(method, path, response)
        return response


def _raise_for_status(method: str, path: str, response: httpx.Response) -> None:
    code = response.status_code
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


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:500]
    return str(body)[:500]


def _parse(response: httpx.Response, model: type[_Model]) -> _Model:
    try:
        return model.model_validate_json(response.content)
    except ValueError as exc:
        raise ServerUnavailable(f"unexpected answer from the server: {exc}") from exc
