"""A JSON response rendered with orjson, for error bodies and hand-built answers."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson (UTC datetimes, no NaN)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z)
