"""The task form: fields generated from an action's signature, and the body they submit.

The body is a plain dict for ``TaskCreate``, so the API's own model and checks judge it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from octopus.config import parse_labels
from octopus.core.models import ActionSpec, ParamSpec, TaskSpec

PARAM_PREFIX = "param."
VARARGS = "var_positional"
VARKW = "var_keyword"
POSITIONAL_ONLY = "positional_only"
_TEXT_ANNOTATIONS = frozenset({"str", "str | None", "Optional[str]", "None | str"})
OPTION_FIELDS = (
    "name",
    "type",
    "run_at",
    "interval_seconds",
    "start_at",
    "cron",
    "timezone",
    "ownership",
    "target",
    "timeout_seconds",
    "max_retries",
)


@dataclass(frozen=True, slots=True)
class ParamField:
    """One input of the form, for one parameter of the action."""

    param: ParamSpec
    value: str

    @property
    def input_name(self) -> str:
        return PARAM_PREFIX + self.param.name

    @property
    def is_text(self) -> bool:
        """Whether the input is taken as typed; other inputs are read as JSON when they parse."""
        return self.param.annotation in _TEXT_ANNOTATIONS

    @property
    def hint(self) -> str:
        if self.param.kind == VARARGS:
            return "a JSON list of extra positional arguments"
        if self.param.kind == VARKW:
            return "a JSON object of extra keyword arguments"
        return "text, as typed" if self.is_text else "JSON (a bare word is taken as text)"


def param_fields(action: ActionSpec, values: dict[str, str]) -> list[ParamField]:
    """The inputs for ``action``, filled with ``values`` (by input name) where given."""
    return [ParamField(p, values.get(PARAM_PREFIX + p.name, "")) for p in action.params]


def _value(field: ParamField, raw: str) -> Any:
    if field.is_text:
        return raw
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def _arguments(
    fields: list[ParamField], errors: dict[str, str]
) -> tuple[list[Any], dict[str, Any]]:
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for field in fields:
        raw = field.value.strip() if not field.is_text else field.value
        if raw == "":
            continue
        kind = field.param.kind
        if kind in (VARARGS, VARKW):
            try:
                extra = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                errors[field.input_name] = f"not valid JSON: {error}"
                continue
            expected = list if kind == VARARGS else dict
            if not isinstance(extra, expected):
                errors[field.input_name] = f"must be a JSON {expected.__name__}"
            elif isinstance(extra, list):
                args += extra
            else:
                kwargs.update(extra)
        elif kind == POSITIONAL_ONLY:
            args.append(_value(field, raw))
        else:
            kwargs[field.param.name] = _value(field, raw)
    return args, kwargs


def task_body(
    plugin: str, action: str, fields: list[ParamField], submitted: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``TaskCreate`` body of a submitted form, and the errors found before the model."""
    errors: dict[str, str] = {}
    args, kwargs = _arguments(fields, errors)
    body: dict[str, Any] = {"plugin": plugin, "action": action, "args": args, "kwargs": kwargs}
    for name in OPTION_FIELDS:
        value = submitted.get(name, "").strip()
        if value:
            body[name] = value
    try:
        labels = parse_labels(submitted.get("labels", ""))
    except ValueError as error:
        errors["labels"] = str(error)
    else:
        body["labels"] = labels
    return body, errors


def clone_values(spec: TaskSpec, action: ActionSpec | None) -> dict[str, str]:
    """Form values that recreate ``spec``: its options, and its arguments per parameter."""
    values = {name: _text(getattr(spec, name)) for name in OPTION_FIELDS}
    values["labels"] = ", ".join(f"{k}={v}" for k, v in spec.labels.items())
    if action is None:
        return values
    args, kwargs = list(spec.args), dict(spec.kwargs)
    for param in action.params:
        key = PARAM_PREFIX + param.name
        if param.kind == VARARGS:
            values[key], args = (orjson.dumps(args).decode() if args else ""), []
        elif param.kind == VARKW:
            values[key], kwargs = (orjson.dumps(kwargs).decode() if kwargs else ""), {}
        elif param.kind == POSITIONAL_ONLY and args:
            values[key] = _shown(param, args.pop(0))
        elif param.name in kwargs:
            values[key] = _shown(param, kwargs.pop(param.name))
        elif args:
            values[key] = _shown(param, args.pop(0))
    return values


def _shown(param: ParamSpec, value: Any) -> str:
    if param.annotation in _TEXT_ANNOTATIONS and isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(getattr(value, "value", value))
