"""The fast lane: the calls a server takes most often skip the web framework when they are
well-formed: agents' heartbeats, claims and report batches, and the admin's single task create.

Heartbeats come from every agent (50,000 agents at a 10 s interval send 5,000 a second), a
claim and a report batch per few dozen executions from every busy agent, and a single create
is the start of every dispatched task. FastAPI's per-request work (middleware layers,
dependency solving, query and header parsing, response validation) cost more than recording a
heartbeat, a tenth of the server's CPU per execution under load, and about a millisecond of
a single create after an idle pause.
The lane answers such a call only when it can answer exactly as the route would: a JSON body
within the size limit that the body guard accepts, the bearer token of an agent the store
already remembers with that agent's name in the path (or the admin token, for a create without
an ``Idempotency-Key``), and a body the route's own model accepts; the answer comes from the
same functions the route calls. Anything else, and any failure before the store changed, goes
on to the full app with the body replayed, so every refusal still comes from one place, the
app. A call the lane began and the route then answers again changes nothing more: a heartbeat
records the same facts; a report the lane recorded is answered as fenced; a claim's or a
create's transaction that failed stored nothing. A create that failed after its transaction
committed is never replayed (that would store the task twice): it fails as a server error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from octopus.core.audit import ADMIN
from octopus.schemas.agents import ClaimRequest, Heartbeat
from octopus.schemas.reports import ReportBatch
from octopus.schemas.tasks import TaskCreate
from octopus.server.body_guard import check_json, replay
from octopus.server.metrics import Metrics
from octopus.server.routes.agent_protocol import (
    CLAIM_ROUTE,
    HEARTBEAT_ROUTE,
    answer_claim,
    answer_heartbeat,
    disconnected,
)
from octopus.server.routes.agent_reports import REPORTS_ROUTE, answer_reports
from octopus.server.routes.tasks import CREATE_ROUTE, created_answer, store_create
from octopus.server.secrets import hash_token, same_token
from octopus.server.state import ServerState

_PATH = re.compile(r"/api/v1/agents/([^/]+)/(heartbeat|claim|reports)")
_BEARER = b"bearer "
_JSON = b"application/json"
_ANSWER_HEADERS = [(b"content-type", _JSON)]

Answer = Callable[[ServerState, str, Any, Receive], Awaitable[BaseModel | bytes]]
"""Answers one call: the server's state, the caller (an agent's name, or the admin actor), the
parsed body, and the request's receive (a long-poll watches it for the client going away);
the answer is a model or its JSON already."""


class Stored(Exception):
    """The call changed the store, then failed: replaying it to the app would repeat the change."""


@dataclass(frozen=True, slots=True)
class _Call:
    model: type[BaseModel]
    answer: Answer
    route: str
    """The route's template, the label of its request metrics."""
    status: int = 200


class FastLane:
    """ASGI wrapper around the whole app (the outermost, see ``app.create_app``) that answers
    the frequent calls."""

    def __init__(
        self, app: ASGIApp, *, state: ServerState, metrics: Metrics, max_body_bytes: int
    ) -> None:
        self._app = app
        self._state = state
        self._max_body_bytes = max_body_bytes
        self._heartbeats = metrics.heartbeats
        self._durations = metrics.request_duration
        self._calls = {
            "heartbeat": _Call(Heartbeat, _heartbeat, HEARTBEAT_ROUTE),
            "claim": _Call(ClaimRequest, _claim, CLAIM_ROUTE),
            "reports": _Call(ReportBatch, _reports, REPORTS_ROUTE),
            "create": _Call(TaskCreate, _create, CREATE_ROUTE, status=201),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._call_of(scope)
        if found is None:
            await self._app(scope, receive, send)
            return
        caller, kind = found
        call = self._calls[kind]
        began = time.perf_counter()
        body = await _read(receive)
        try:
            check_json(body)  # the body guard's refusals (a report's result is any JSON)
            answer = await call.answer(
                self._state, caller, call.model.model_validate_json(body), receive
            )
        except Stored:
            raise
        except Exception:  # an unsafe or invalid body, a revoked agent, a store failure
            await self._app(scope, replay(body, receive), send)
            return
        await _answer(send, answer, call.status)
        # Labelled when observed, as ``RequestTimer`` does: a route never called shows no series.
        status = str(call.status)
        self._durations.labels(call.route, "POST", status).observe(time.perf_counter() - began)
        if kind == "heartbeat":
            self._heartbeats.inc()

    def _call_of(self, scope: Scope) -> tuple[str, str] | None:
        """The caller and the kind of call this request is, when the lane may answer it."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
            return None
        path = scope["path"]
        match = _PATH.fullmatch(path)
        if match is None and path != CREATE_ROUTE:
            return None
        token = length = media = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                token = value
            elif key == b"content-length":
                length = value
            elif key == b"content-type":
                media = value
            elif key == b"idempotency-key":
                return None  # the route checks the key and answers a repeat
        if (
            media.split(b";")[0].strip().lower() != _JSON
            or not length.isdigit()
            or int(length) > self._max_body_bytes
            or token[: len(_BEARER)].lower() != _BEARER
        ):
            return None
        given = token[len(_BEARER) :].decode("latin-1")
        if match is None:
            return (ADMIN, "create") if same_token(given, self._state.tokens.admin) else None
        agent = self._state.store.remembered_agent(hash_token(given))
        if agent is None or agent.name != match[1]:
            return None
        return agent.name, match[2]


async def _heartbeat(state: ServerState, agent: str, body: Heartbeat, _: Receive) -> BaseModel:
    return await answer_heartbeat(state, agent, body)


async def _claim(state: ServerState, agent: str, body: ClaimRequest, receive: Receive) -> bytes:
    return await answer_claim(state, agent, body, lambda: disconnected(receive))


async def _reports(state: ServerState, agent: str, body: ReportBatch, _: Receive) -> BaseModel:
    return await answer_reports(state, agent, body)


async def _create(state: ServerState, actor: str, body: TaskCreate, _: Receive) -> BaseModel:
    created = await store_create(state, body, None, actor)
    try:
        return created_answer(state, created)
    except Exception as exc:
        raise Stored(f"task {created.task.id} was stored, then answering failed") from exc


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


def _json(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


async def _answer(send: Send, answer: BaseModel | bytes, status: int) -> None:
    payload = answer if isinstance(answer, bytes) else _json(answer)
    headers = [*_ANSWER_HEADERS, (b"content-length", str(len(payload)).encode())]
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": payload})
