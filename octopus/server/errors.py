"""The one place that turns errors into HTTP status codes and JSON bodies."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from octopus.errors import (
    AuthError,
    Conflict,
    Forbidden,
    NotFound,
    OctopusError,
    PluginError,
    RateLimited,
    ValidationFailed,
)
from octopus.schemas.common import ErrorBody, ErrorDetail
from octopus.server.responses import FastJSONResponse

logger = logging.getLogger(__name__)

_STATUS_BY_ERROR: tuple[tuple[type[OctopusError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (ValidationFailed, 422),
    (PluginError, 422),
    (AuthError, 401),
    (Forbidden, 403),
    (RateLimited, 429),
)


def error_response(
    status: int, code: str, message: str, details: Sequence[ErrorDetail] = (), **headers: str
) -> FastJSONResponse:
    """A JSON error body with ``status``."""
    body = ErrorBody(error=code, message=message, details=list(details))
    return FastJSONResponse(body.model_dump(), status_code=status, headers=headers or None)


def status_for(exc: OctopusError) -> int:
    """The HTTP status of an Octopus error."""
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return 400


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) if parts else "body"


def validation_details(errors: Sequence[Any]) -> list[ErrorDetail]:
    """Readable ``field: problem`` pairs from pydantic errors, cross-field ones included."""
    details = []
    for err in errors:
        field = _field_of(err.get("loc", ()))
        message = str(err.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        # Cross-field checks name their field as "field: problem" since pydantic cannot.
        head, sep, rest = message.partition(": ")
        if sep and field in ("body", "query", "path") and head.isidentifier():
            field, message = head, rest
        elif sep and _is_item(err) and head.isidentifier():
            # The same check on one item of a list (a bulk create): "tasks.3.target".
            field, message = f"{field}.{head}", rest
        details.append(ErrorDetail(field=field, message=message))
    return details


def _is_item(err: Any) -> bool:
    """Whether a model-level check failed on an item of a list (its location ends in an index)."""
    loc = err.get("loc", ())
    return err.get("type") == "value_error" and bool(loc) and isinstance(loc[-1], int)


async def _on_octopus_error(request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, OctopusError)
    status = status_for(exc)
    details = (
        [ErrorDetail(field=exc.field, message=exc.problem)]
        if isinstance(exc, ValidationFailed)
        else []
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return error_response(status, exc.code, exc.message, details, **headers)


async def _on_validation_error(request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = validation_details(exc.errors())
    summary = "; ".join(f"{d.field}: {d.message}" for d in details[:5])
    return error_response(422, "validation_error", summary or "invalid request", details)


async def _on_http_error(request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _on_unexpected(request: Request, exc: Exception) -> FastJSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error a JSON body and a fitting status."""
    app.add_exception_handler(OctopusError, _on_octopus_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
