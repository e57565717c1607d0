"""Plugin for the dashboard's XSS probe: markup in results, errors and output."""

from __future__ import annotations

import sys

MARKUP = '<script>window.__xss = "result"</script><img src=x onerror="window.__xss = \'img\'">'


def probe() -> str:
    """Print and return markup that would run if the dashboard did not escape it."""
    sys.stdout.write(MARKUP.replace("result", "log") + "\n")
    return MARKUP


def explode() -> None:
    """Fail with markup in the error message."""
    raise RuntimeError(MARKUP.replace("result", "error"))
