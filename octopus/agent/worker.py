"""The worker process: runs plugin actions for its agent, one at a time, over a JSON-lines pipe.

The executor starts it as ``python -u -m octopus.agent.worker`` in its own session. At start
the worker moves its protocol stream (the original stdin and stdout pipes) to private
descriptors and points fds 0, 1 and 2 at ``/dev/null``; for each execution it points fds 1
and 2 at that execution's capture file, so output of child processes is captured too.

Protocol, one JSON object per line. The worker first sends ``{"event": "ready", "pid": N}``.
Then for each request ``{"id", "plugin", "sha256", "path", "action", "args", "kwargs",
"log_path"}`` it sends one reply ``{"id", "status": "succeeded"|"failed", "result",
"error": {"type", "message", "traceback"}|null, "output_bytes", "capture_free"}``
(``output_bytes``: how much the capture file holds when the reply is sent; ``capture_free``,
only when that is 0: whether no process holds the file open for writing any more, so the
agent may name it again for the worker's next execution). End of input means the agent is
gone or done with this worker: the worker exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import math
import os
import signal
import sys
import traceback
from collections.abc import Awaitable
from pathlib import Path
from types import GeneratorType, ModuleType, TracebackType
from typing import IO, Any

from octopus.plugins.importing import load_module, resolve_action

PARENT_ENV = "OCTOPUS_WORKER_PARENT"
"""Set by the executor to the agent's pid, so a worker whose agent already died exits."""

MAX_RESULT_BYTES = 512 * 1024
"""The largest JSON result an action may return; larger results fail as ResultTooLarge."""

MAX_MESSAGE_CHARS = 4000
MAX_TRACEBACK_CHARS = 20_000
_MODULE_CACHE_SIZE = 64
_PR_SET_PDEATHSIG = 1
_ITERABLE_COROUTINE = 0x100
"""``inspect.CO_ITERABLE_COROUTINE``: the flag ``@types.coroutine`` sets on a generator's code."""

_CAPTURE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND
_SET_LEASE: int | None = getattr(fcntl, "F_SETLEASE", None)
"""Linux only: elsewhere no capture file is ever reported free, and each execution has its own."""

Message = dict[str, Any]


class NonJSONResult(TypeError):
    """An action returned something that does not round-trip through JSON."""


class ResultTooLarge(ValueError):
    """An action returned more than MAX_RESULT_BYTES of JSON."""


class Channel:
    """The private JSON-lines stream between the worker and its agent."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    def take_over_stdio(cls) -> Channel:
        """Move the protocol to private fds and point fds 0, 1 and 2 at /dev/null."""
        proto_in, proto_out = os.dup(0), os.dup(1)  # os.dup fds are not inherited by children
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        return cls(os.fdopen(proto_in, "rb"), os.fdopen(proto_out, "wb"))

    def receive(self) -> Message | None:
        """Return the next request, or None at end of input."""
        line = self._reader.readline()
        return json.loads(line) if line else None

    def send(self, message: Message) -> None:
        """Write one message as a line and flush it."""
        self._writer.write(json.dumps(message, allow_nan=False).encode("ascii") + b"\n")
        self._writer.flush()


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    expected = os.environ.get(PARENT_ENV)
    if expected and os.getppid() != int(expected):
        os._exit(1)


def execute(request: Message, modules: dict[str, ModuleType]) -> Message:
    """Run one request with fds 1 and 2 pointed at its capture file; return the reply."""
    path = request["log_path"]
    capture = os.open(path, _CAPTURE_FLAGS, 0o600)
    saved = os.dup(1)
    os.dup2(capture, 1)
    os.dup2(capture, 2)
    os.close(capture)
    try:
        reply = {"id": request["id"], **_call(request, modules)}
        _flush_quietly()
        # Tells the agent whether there is anything to read: most actions print nothing. By
        # path, since the action may have closed or moved fds 1 and 2.
        with contextlib.suppress(OSError):  # gone: the agent finds out itself
            reply["output_bytes"] = os.stat(path).st_size
    finally:
        os.dup2(saved, 1)
        os.dup2(saved, 2)
        os.close(saved)
    if reply.get("output_bytes") == 0:  # after fds 1 and 2 left the file: they would count
        reply["capture_free"] = nobody_writes(path)
    return reply


def nobody_writes(path: str) -> bool:
    """Whether no process has ``path`` open for writing, such as a child the action started
    that still runs with fds 1 and 2 inherited (its late output must not land in another
    execution's log).

    Linux grants a read lease only on a file no one has open for writing; the lease is given
    back at once (~6 us). A new capture file for every execution instead cost the agent ~40 us
    to create and remove on ext4 here, 23 % of its busy time when executions run back to back.
    """
    if _SET_LEASE is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.fcntl(fd, _SET_LEASE, fcntl.F_RDLCK)
        fcntl.fcntl(fd, _SET_LEASE, fcntl.F_UNLCK)
    except OSError:  # EAGAIN: a writer holds it; or a file system without leases
        return False
    finally:
        os.close(fd)
    return True


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # the plugin closed or replaced it
            pass


def _call(request: Message, modules: dict[str, ModuleType]) -> Message:
    try:
        module = _module(request, modules)
        function = resolve_action(module, request["action"])
        result = function(*request["args"], **request["kwargs"])
        if _awaitable(result):
            import asyncio  # here: only coroutine actions pay for its memory in every worker

            result = asyncio.run(_await(result))
    except BaseException as exc:  # a plugin may raise SystemExit or KeyboardInterrupt too
        return _failure(exc)
    try:
        check_json(result)
    except (NonJSONResult, ResultTooLarge) as exc:
        return _failure(exc, with_traceback=False)
    return {"status": "succeeded", "result": result, "error": None}


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _awaitable(value: object) -> bool:
    """``inspect.isawaitable`` without importing ``inspect`` (1.4 MB in every worker): an
    awaitable object, or a generator-based coroutine (``@types.coroutine``)."""
    if isinstance(value, Awaitable):
        return True
    return isinstance(value, GeneratorType) and bool(value.gi_code.co_flags & _ITERABLE_COROUTINE)


def _module(request: Message, modules: dict[str, ModuleType]) -> ModuleType:
    key = f"{request['plugin']}:{request['sha256']}"
    module = modules.get(key)
    if module is None:
        module = load_module(Path(request["path"]), name=request["plugin"])
        if len(modules) >= _MODULE_CACHE_SIZE:
            oldest = next(iter(modules))
            sys.modules.pop(modules.pop(oldest).__name__, None)
        modules[key] = module
    return module


def check_json(result: Any) -> None:
    """Raise NonJSONResult or ResultTooLarge unless ``result`` round-trips through JSON."""
    try:
        _check_value(result, "result")
    except RecursionError:
        raise NonJSONResult("result is nested too deeply to be JSON") from None
    size = len(json.dumps(result, allow_nan=False, ensure_ascii=False).encode("utf-8"))
    if size > MAX_RESULT_BYTES:
        raise ResultTooLarge(f"result is {size} bytes of JSON; the limit is {MAX_RESULT_BYTES}")


def _check_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if not _is_unicode(value):
            raise NonJSONResult(f"{where} is a string with unpaired surrogates")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise NonJSONResult(f"{where} is {value}, which JSON cannot represent")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NonJSONResult(
                    f"{where} has a {type(key).__name__} key {key!r}; JSON keys are strings"
                )
            _check_value(item, f"{where}[{key!r}]")
    else:
        raise NonJSONResult(f"{where} is a {type(value).__name__}, which is not JSON")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _failure(exc: BaseException, *, with_traceback: bool = True) -> Message:
    error = {
        "type": type(exc).__name__,
        "message": _message(exc)[:MAX_MESSAGE_CHARS],
        "traceback": _traceback(exc)[-MAX_TRACEBACK_CHARS:] if with_traceback else None,
    }
    return {"status": "failed", "result": None, "error": error}


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not break the report
        return repr(exc)


def _traceback(exc: BaseException) -> str:
    # Drop the first frame: it is this module calling the action, not the plugin's code.
    tb: TracebackType | None = exc.__traceback__
    tb = tb.tb_next if tb is not None and tb.tb_next is not None else tb
    return "".join(traceback.format_exception(type(exc), exc, tb))


def main() -> int:
    """Serve requests until the agent closes the pipe."""
    die_with_parent()
    channel = Channel.take_over_stdio()
    channel.send({"event": "ready", "pid": os.getpid()})
    modules: dict[str, ModuleType] = {}
    while (request := channel.receive()) is not None:
        channel.send(execute(request, modules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
