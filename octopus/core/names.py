"""The spelling rules of names and identifiers, kept pure so a worker can check them without
importing pydantic."""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
"""Agent and task names."""
IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
"""Plugin and action names (Python identifiers)."""
