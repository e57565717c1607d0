"""ASGI middleware that refuses oversized, non-JSON and hazardous JSON bodies before routing.

Python's json module accepts NaN and Infinity, turns a 5,000-digit number into a slow
bignum, and recurses on deep nesting; none of those may reach a route or the database.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from octopus.server.errors import error_response

MAX_INT = 2**63 - 1
MAX_DEPTH = 64
_DIGITS_ALIKE = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19
"""Digits enough for an integer beyond 64 bits (2**63 has 19), once all digits read ``0``."""
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FORM = b"application/x-www-form-urlencoded"
_API_PREFIX = "/api/"
_NUL = b"%00"


class UnsafeJSON(ValueError):
    """A body that is valid JSON to Python but not to Octopus."""


def _reject_constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not allowed in JSON")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or not -MAX_INT - 1 <= (value := int(text)) <= MAX_INT:
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
        children = item.values() if isinstance(item, dict) else item
        if children and depth >= limit:  # its values sit one level deeper
            raise UnsafeJSON(f"JSON nested deeper than {limit} levels")
        # Only containers with something inside go on the stack: nothing else nests further.
        stack += [(child, depth + 1) for child in children if child and _nests(child)]


def _nests(value: Any) -> bool:
    return isinstance(value, dict | list)


def check_json(body: bytes) -> None:
    """Raise UnsafeJSON or ValueError unless ``body`` is JSON that Octopus accepts.

    orjson reads every body first: it refuses NaN, Infinity and numbers that overflow, and
    costs a fraction of the json module with a callback per number. Only a body it refuses,
    or one with a run of 19 digits or more (an integer that may pass 64 bits, which orjson
    would read as a float), is read again the careful way, which also says what is wrong.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = _careful(body)
    else:
        if _LONG_DIGITS in body.translate(_DIGITS_ALIKE):
            value = _careful(body)
    # Nesting deeper than the limit needs more brackets than the limit.
    if isinstance(value, dict | list) and body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        _depth(value, MAX_DEPTH)


def _careful(body: bytes) -> Any:
    try:
        return json.loads(
            body, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float
        )
    except RecursionError:
        raise UnsafeJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None


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
