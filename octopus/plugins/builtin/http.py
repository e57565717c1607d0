"""Built-in plugin ``http``: check that a URL answers with the expected status."""

from __future__ import annotations

import time
from typing import Any

import httpx


def check(url: str, expect_status: int = 200, timeout_seconds: float = 10) -> dict[str, Any]:
    """GET ``url`` and compare the status code with ``expect_status``.

    Returns a dict with ``status`` (None if no answer), ``elapsed_ms``, ``ok`` and, when the
    request failed, ``error``. A failed check is a result, not an exception, so it can be
    charted; raise in your own plugin if you want the execution to fail instead.
    """
    started = time.perf_counter()
    try:
        response = httpx.get(url, timeout=timeout_seconds, follow_redirects=False)
    except httpx.HTTPError as exc:
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        error = f"{type(exc).__name__}: {exc}"
        return {"url": url, "status": None, "elapsed_ms": elapsed_ms, "ok": False, "error": error}
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    status = response.status_code
    return {"url": url, "status": status, "elapsed_ms": elapsed_ms, "ok": status == expect_status}
