"""Log formats: JSON lines carry the device's identifiers as fields."""

from __future__ import annotations

import json
import logging
import re

from nubes.config import Settings
from nubes.logs import JsonFormatter, configure_logging


def _record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("nubes.test")
    record = logger.makeRecord(
        "nubes.test", logging.INFO, __file__, 1, "device %s: %s", (2159000001, "acked"), None
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_line_has_time_level_logger_and_message() -> None:
    entry = json.loads(JsonFormatter().format(_record()))
    assert entry["level"] == "INFO"
    assert entry["logger"] == "nubes.test"
    assert entry["message"] == "device 2159000001: acked"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert "serial" not in entry


def test_context_fields_become_json_fields() -> None:
    line = JsonFormatter().format(
        _record(serial=2159000001, session_id=42, message_id="m-1", unrelated="x")
    )
    entry = json.loads(line)
    assert entry["serial"] == 2159000001
    assert entry["session_id"] == 42
    assert entry["message_id"] == "m-1"
    assert "unrelated" not in entry


def test_exceptions_are_one_field_of_one_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "RuntimeError: boom" in json.loads(line)["error"]


def test_configure_logging_picks_the_format_and_level() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(Settings(log_format="json", log_level="WARNING"))
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.WARNING
        configure_logging(Settings())
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.INFO
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
