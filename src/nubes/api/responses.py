"""A JSON response written by orjson, for routes that build their bodies themselves.

Routes with a response model let FastAPI serialize through Pydantic; routes
on hot paths (message lists) build plain dicts and return this directly, which
skips a validation pass. UUIDs and datetimes are written natively by orjson
(RFC 3339 times).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z, default=str)
