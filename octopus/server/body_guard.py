"""ASGI middleware that refuses oversized, non-JSON and hazardous JSON bodies before routing.

Python's json module accepts NaN and Infinity, turns a 5,000-digit number into a slow
bignum, and recurses on deep nesting; none of those may reach a route or the database.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from octopus.server.errors import error_response

MAX_INT = 2**63 - 1
MAX_DEPTH = 64
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FORM = b"application/x-www-form-urlencoded"
_API_PREFIX = "/api/"
_NUL = b"%00"


class UnsafeJSON(ValueError):
    """A body that is valid JSON to Python but not to Octopus."""


def _reject_constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not allowed in JSON")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) > MAX_INT:
        raise UnsafeJSON("integer out of the 64-bit range")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON("number out of range")
    return value


def _depth(value: Any, limit: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise UnsafeJSON(f"JSON nested deeper than {limit} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def check_json(body: bytes) -> None:
    """Raise UnsafeJSON or ValueError unless ``body`` is JSON that Octopus accepts."""
    try:
        value = json.loads(
            body, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float
        )
    except RecursionError:
        raise UnsafeJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    _depth(value, MAX_DEPTH)


class BodyGuard:
    """Enforces the body size limit (413), a JSON content type (415), safe JSON (400), and
    query strings without NUL characters (400: PostgreSQL cannot even compare them)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _NUL in scope.get("query_string", b"").lower():
            message = "the query string must not contain NUL characters (%00)"
            await self._refuse(scope, receive, send, 400, "invalid_query", message)
            return
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, receive, send, 413, "too_large", self._too_large())
            return
        body = await self._read(receive)
        if body is None:
            await self._refuse(scope, receive, send, 413, "too_large", self._too_large())
            return
        problem = self._problem(headers.get(b"content-type", b""), body, scope["path"])
        if problem is not None:
            status, code, message = problem
            await self._refuse(scope, receive, send, status, code, message)
            return
        await self.app(scope, replay(body, receive), send)

    def _too_large(self) -> str:
        return f"request body is larger than {self.max_body_bytes} bytes"

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _problem(content_type: bytes, body: bytes, path: str) -> tuple[int, str, str] | None:
        if not body:
            return None
        media = content_type.split(b";")[0].strip().lower()
        if media == _FORM and not path.startswith(_API_PREFIX):
            return None  # the dashboard's HTML forms; the API takes JSON only
        if media != b"application/json":
            return 415, "unsupported_media_type", "request body must be application/json"
        try:
            check_json(body)
        except UnsafeJSON as exc:
            return 400, "invalid_json", str(exc)
        except ValueError as exc:
            return 400, "invalid_json", f"malformed JSON: {exc}"
        return None

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
    ) -> None:
        response = error_response(status, code, message)
        await response(scope, receive, send)


def replay(body: bytes, downstream: Receive) -> Receive:
    """Hand the buffered body to the app once, then pass on the real receive (disconnects)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await downstream()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
