"""One exception root for Octopus, with subclasses that carry structured fields."""

from __future__ import annotations


class OctopusError(Exception):
    """Root of every error Octopus raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(OctopusError):
    """A named thing does not exist."""

    code = "not_found"

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!s} not found")
        self.kind = kind
        self.key = key


class Conflict(OctopusError):
    """The request clashes with the current state (duplicate name, reused idempotency key)."""

    code = "conflict"


class InvalidTransition(Conflict):
    """A status change that the state machine does not allow."""

    code = "invalid_transition"

    def __init__(self, entity: str, old: str, new: str) -> None:
        super().__init__(f"{entity} cannot go from {old} to {new}")
        self.entity = entity
        self.old = old
        self.new = new


class Fenced(Conflict):
    """A report from an attempt that no longer holds its lease."""

    code = "fenced"


class ValidationFailed(OctopusError):
    """An input is well-formed but wrong; ``field`` names it."""

    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.problem = message


class AuthError(OctopusError):
    """Missing or unknown credentials."""

    code = "unauthorized"


class Forbidden(OctopusError):
    """Known credentials that may not do this."""

    code = "forbidden"


class PluginError(OctopusError):
    """A plugin cannot be found, loaded, verified or called."""

    code = "plugin_error"


class ConfigError(OctopusError):
    """A setting is missing or has a bad value; the message names the variable."""

    code = "config_error"


class RateLimited(OctopusError):
    """Too many failed attempts from one client; ``retry_after`` says when to try again."""

    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
