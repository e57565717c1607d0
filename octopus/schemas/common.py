"""Building blocks of the wire models: bounded ids, names, labels, pages, errors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from octopus.core.names import IDENTIFIER_PATTERN as IDENTIFIER_PATTERN
from octopus.core.names import NAME_PATTERN as NAME_PATTERN

MAX_ID = 2**63 - 1
"""Ids are 64-bit signed integers in every backend; anything larger is a 4xx, not an overflow."""


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a timezone offset, for example 2026-01-31T09:00:00+00:00")
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Text = Annotated[str, Field(max_length=10_000), AfterValidator(_no_nul)]
AgentName = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN.pattern,
        description="1-128 letters, digits, '_', '.' or '-', starting with a letter or digit.",
    ),
]
PluginName = Annotated[str, Field(pattern=IDENTIFIER_PATTERN.pattern)]
ActionName = Annotated[str, Field(pattern=IDENTIFIER_PATTERN.pattern)]
LabelKey = Annotated[str, Field(pattern=NAME_PATTERN.pattern)]
LabelValue = Annotated[str, Field(max_length=256), AfterValidator(_no_nul)]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=64)]
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class Inbound(BaseModel):
    """Base of every input model: unknown fields are refused, so a typo is a 4xx naming it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Outbound(BaseModel):
    """Base of every output model."""

    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(Outbound, Generic[T]):
    """One page of a list, newest first; ask for the next with ``offset + limit``."""

    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorDetail(Outbound):
    """One problem with a request: where it is and what is wrong."""

    field: str | None = None
    message: str


class ErrorBody(Outbound):
    """Every 4xx and 5xx body: a machine code, a human message, and the problems found."""

    error: str
    message: str
    details: list[ErrorDetail] = []


class ErrorInfo(Outbound):
    """Why an execution did not succeed: exception type, message and traceback."""

    type: str
    message: str
    traceback: str | None = None
