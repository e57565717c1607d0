"""The heartbeat lane: well-formed heartbeats of known agents skip the web framework.

Heartbeats are the call a server takes most often (50,000 agents at a 10 s interval send 5,000
a second), and FastAPI's per-request work (middleware layers, dependency solving, query and
header parsing, response validation) cost several times what recording a heartbeat costs. The
lane answers a heartbeat only when it can answer exactly as the route would: a JSON body within
the size limit, the bearer token of an agent the store already remembers, that agent's name in
the path, and a body the route's own model accepts. Anything else, and any failure while
recording, goes on to the full app with the body replayed, so every refusal still comes from
one place, the route (recording a heartbeat twice changes nothing).
"""

from __future__ import annotations

import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from octopus.schemas.agents import Heartbeat, HeartbeatAck
from octopus.server.body_guard import replay
from octopus.server.metrics import Metrics
from octopus.server.routes.agent_protocol import HEARTBEAT_ROUTE, answer_heartbeat
from octopus.server.secrets import hash_token
from octopus.server.state import ServerState

_PATH = re.compile(r"/api/v1/agents/([^/]+)/heartbeat")
_BEARER = b"bearer "
_JSON = b"application/json"
_ANSWER_HEADERS = [(b"content-type", _JSON)]


class HeartbeatLane:
    """ASGI wrapper around the whole app (outside its middleware) that answers heartbeats."""

    def __init__(
        self, app: ASGIApp, *, state: ServerState, metrics: Metrics, max_body_bytes: int
    ) -> None:
        self._app = app
        self._state = state
        self._max_body_bytes = max_body_bytes
        self._duration = metrics.request_duration.labels(HEARTBEAT_ROUTE, "POST", "200")
        self._heartbeats = metrics.heartbeats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        agent = self._agent_of(scope)
        if agent is None:
            await self._app(scope, receive, send)
            return
        began = time.perf_counter()
        body = await _read(receive)
        try:
            ack = await answer_heartbeat(self._state, agent, Heartbeat.model_validate_json(body))
        except Exception:  # an invalid body, a revoked agent, a store failure: the route's turn
            await self._app(scope, replay(body, receive), send)
            return
        await _answer(send, ack)
        self._duration.observe(time.perf_counter() - began)
        self._heartbeats.inc()

    def _agent_of(self, scope: Scope) -> str | None:
        """The agent whose heartbeat this request is, when the lane may answer it."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
            return None
        match = _PATH.fullmatch(scope["path"])
        if match is None:
            return None
        token = length = media = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                token = value
            elif key == b"content-length":
                length = value
            elif key == b"content-type":
                media = value
        if (
            media.split(b";")[0].strip().lower() != _JSON
            or not length.isdigit()
            or int(length) > self._max_body_bytes
            or token[: len(_BEARER)].lower() != _BEARER
        ):
            return None
        token_hash = hash_token(token[len(_BEARER) :].decode("latin-1"))
        agent = self._state.store.remembered_agent(token_hash)
        return agent.name if agent is not None and agent.name == match[1] else None


async def _read(receive: Receive) -> bytes:
    """The whole body (its length was checked against the limit from Content-Length, which the
    HTTP server enforces)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _answer(send: Send, ack: HeartbeatAck) -> None:
    payload = ack.__pydantic_serializer__.to_json(ack)
    headers = [*_ANSWER_HEADERS, (b"content-length", str(len(payload)).encode())]
    start: Message = {"type": "http.response.start", "status": 200, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": payload})
