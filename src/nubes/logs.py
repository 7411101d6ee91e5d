"""Logging set-up: readable lines at a terminal, JSON lines for collectors.

`NUBES_LOG_FORMAT=json` writes one JSON object per line, so a log stack
(Loki, Elasticsearch, CloudWatch) can filter by field rather than by regex.
Calls that concern a device pass its identifiers as `extra`, e.g.
`log.info("...", serial, extra={"serial": serial, "session_id": sid})`;
those keys become fields of the object. Secrets are never passed as extra.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from nubes.config import Settings

# Identifiers a log call may attach with `extra=`; they become JSON fields.
CONTEXT_FIELDS = (
    "serial",
    "device_id",
    "session_id",
    "message_id",
    "organization_id",
    "callback_id",
    "delivery_id",
    "remote",
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, context, error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def configure_logging(settings: Settings) -> None:
    """Root handler on stderr in the configured format and level."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Alembic reports every check at INFO; only `nubes migrate` says what it did.
    logging.getLogger("alembic").setLevel(logging.WARNING)
