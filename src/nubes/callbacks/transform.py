"""What a callback sends: the message document, its JSONata payload and `{{path}}` templates.

Pure and synchronous: a value in, a value out. The dispatcher, the preview
endpoint and the "send test" button all go through the same three steps:

1. `message_document` builds the input a callback sees (the message as the API
   shows it, plus the device);
2. `compile_payload(callback.payload).apply(document)` transforms it (the
   dispatcher caches the compiled `Payload` per callback version);
3. `render_template` fills `{{path}}` into the URL, query values and headers.

A payload is a customer's program running inside our dispatcher, so every
evaluation runs under `LIMITS`: time, depth, steps, string, array and result
sizes. Measured with jlens 0.25 on a ~1.6 KB CHESTER message, the cloud.md
example takes ~15 µs and ~20 steps; a legitimate transform over such a message
stays far below 200,000 steps (which take 10-30 ms to exhaust), so a hostile
expression fails in well under 0.2 s with a readable reason instead of holding
a worker. The one known gap: jlens builds a range such as `[1..10000000]` before
checking `max_array_length` (JSONata itself caps ranges at 10^7 items), which
costs ~0.1-0.3 s and ~240 MB for that one evaluation before it fails.

Templates are deliberately not JSONata: HARDWARIO v1 users write
`{{data.hygrometer.temperature.measurements.0.avg}}`, a dot path with numeric
list indexes, and nothing else. `check_template` refuses malformed ones at
save time; `render_template` never raises and leaves what it cannot read as
literal text.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import jlens
import orjson

from nubes.api.views import message_view
from nubes.errors import NubesError


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one JSONata evaluation (seconds, levels, steps, items, bytes)."""

    timeout: float = 0.1
    max_depth: int = 200
    max_steps: int = 200_000
    max_string_length: int = 1_000_000
    max_array_length: int = 100_000
    max_result_size: int = 1_000_000


LIMITS: Final = Limits()


class TransformError(NubesError):
    """A payload or template that cannot be compiled or evaluated.

    `position` is the character offset in the source (as jlens reports it, or
    where a template goes wrong); `code` the JSONata error code, if any.
    """

    def __init__(self, message: str, position: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.position = position
        self.code = code


class _Skip:
    """The type of `SKIP`: a JSONata result of undefined or null."""

    _instance: _Skip | None = None

    def __new__(cls) -> _Skip:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SKIP"

    def __bool__(self) -> bool:
        return False


SKIP: Final = _Skip()
"""What `Payload.apply` returns when the delivery is to be skipped."""


# --- the JSONata payload -------------------------------------------------------------------


# Codes of the limits (see `_limit_reason`).
LIMIT_CODES: Final = frozenset({"D1012", "U1006", "D1011", "U1001"})
# A payload over its limits this many times in a row is not evaluated again
# for a while: each such evaluation may cost far more than the time limit
# (jlens builds a range such as [1..10000000], some 260 MB and 50-800 ms,
# before it checks the array limit), and one customer's expression must not
# slow the dispatcher down for everyone.
SUSPEND_AFTER: Final = 3
SUSPEND_SECONDS: Final = 60.0


class Payload:
    """A compiled callback payload; `apply` may be called from any thread."""

    __slots__ = ("_expression", "_limits", "_over_limits", "_suspended_until", "source")

    def __init__(
        self, source: str, expression: jlens.Expression | None, limits: Limits = LIMITS
    ) -> None:
        self.source = source
        self._expression = expression
        self._limits = asdict(limits)
        self._over_limits = 0  # in a row
        self._suspended_until = 0.0

    def apply(self, document: dict[str, Any]) -> Any:
        """The transformed document, `SKIP` for undefined/null; raises `TransformError`."""
        if self._expression is None:
            return document
        if self._suspended_until and time.monotonic() < self._suspended_until:
            raise TransformError(
                f"the payload went over its limits {SUSPEND_AFTER} times in a row; it is not"
                f" evaluated for {SUSPEND_SECONDS:.0f} s (change the callback to try at once)",
                code="suspended",
            )
        try:
            result = self._expression.evaluate(document, None, **self._limits)
        except jlens.JlensError as err:
            self._count_limits(err.code in LIMIT_CODES)
            raise _evaluation_error(err, self._limits) from err
        self._count_limits(False)
        return SKIP if result is None else result

    def _count_limits(self, over: bool) -> None:
        self._over_limits = self._over_limits + 1 if over else 0
        self._suspended_until = 0.0
        if self._over_limits >= SUSPEND_AFTER:
            self._over_limits = 0
            self._suspended_until = time.monotonic() + SUSPEND_SECONDS

    def __repr__(self) -> str:
        return f"Payload({self.source!r})"


def compile_payload(source: str, limits: Limits = LIMITS) -> Payload:
    """Compile a callback's `payload`; blank means the message as-is."""
    if not source.strip():
        return Payload(source, None, limits)
    try:
        return Payload(source, jlens.Expression(source), limits)
    except jlens.JlensError as err:
        raise TransformError(str(err), err.position, err.code) from err


def _evaluation_error(err: jlens.JlensError, limits: Mapping[str, Any]) -> TransformError:
    """A readable reason for a failed evaluation, naming the limit that stopped it."""
    reason = _limit_reason(err, limits) or str(err)
    return TransformError(reason, err.position, err.code)


def _limit_reason(err: jlens.JlensError, limits: Mapping[str, Any]) -> str | None:
    # Codes found by experiment with jlens 0.25 (see the module docstring).
    if err.code == "D1012":
        return f"the payload took longer than {round(limits['timeout'] * 1000)} ms"
    if err.code == "U1006":
        return f"the payload exceeded {limits['max_steps']} steps"
    if err.code == "D1011":
        return f"the payload nested deeper than {limits['max_depth']} levels (endless recursion?)"
    if err.code == "U1001":
        text = str(err)
        return f"the payload is too large: {text[:1].lower()}{text[1:]}"
    if err.code == "U1004":
        return f"the message cannot be read as JSON: {err}"
    return None


# --- the message document ------------------------------------------------------------------


def message_document(message: Mapping[str, Any], device: Mapping[str, Any]) -> dict[str, Any]:
    """The input a callback sees: the message as the API shows it, plus its device.

    `message` is a stored message row (with `body` and `raw` bytes; it goes
    through `api.views.message_view` without secrets, so a session message
    has no `ble_passkey`) or a view `message_view` already made (with `data`).
    `device` has `id`, `name`, `serial` and `label`. The result is JSON-ready
    (UUIDs as strings, times as ISO 8601 in UTC with `Z`)::

        {
          "id": "0190a1b2-…",                      # UUIDv7, time-ordered
          "created_at": "2024-07-01T12:00:00.123456Z",
          "organization_id": "…", "group_id": "…" | null, "device_id": "…",
          "label": "hsn:2159018247" | null,        # the device's label
          "session_id": 42 | null,
          "type": "data",                          # session, data, config, stats, …
          "direction": "up" | "down",
          "data": {…},                             # the decoded body; null if not decoded
          "raw": "<base64 of the message bytes>",
          "codec_hash": "…" | null,
          "decode_state": "decoded" | "undecoded" | "failed" | null,
          "decode_error": "…" | null,
          "downlink_id": "…" | null,
          "device": {"id": "…", "name": "…", "serial_number": 2159018247,
                     "label": "hsn:2159018247" | null}
        }
    """
    view = message if "data" in message else message_view(message, device.get("label"))
    document = {key: _json_ready(value) for key, value in view.items()}
    document["device"] = {
        "id": _json_ready(device["id"]),
        "name": device["name"],
        "serial_number": device["serial"],
        "label": device.get("label"),
    }
    return document


def _json_ready(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return iso_time(value)
    return value


def iso_time(value: datetime) -> str:
    """ISO 8601 in UTC with `Z`, as the API writes times (naive means UTC)."""
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def compact_json(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON; never raises for values a document can hold."""
    try:
        return orjson.dumps(value, default=str)
    except (TypeError, orjson.JSONEncodeError):  # integers beyond 64 bits, non-text keys
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        return text.encode("utf-8", "surrogatepass")


# --- {{path}} templates --------------------------------------------------------------------

_SEGMENT = r"[A-Za-z0-9_\-]+"
_PATH = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
_TEMPLATE = re.compile(rf"\{{\{{\s*({_SEGMENT}(?:\.{_SEGMENT})*)\s*\}}\}}")
_SEGMENT_CHAR = re.compile(r"[A-Za-z0-9_\-.]")


def render_template(text: str, document: Mapping[str, Any], *, url_encode: bool) -> str:
    """`text` with each `{{path}}` replaced by the document's value there.

    Strings as they are, numbers and booleans as JSON text, objects and lists
    as compact JSON, a missing value or null as nothing. With `url_encode`
    every value is percent-encoded (for URL paths and query values). What is
    not a valid template stays as it is.
    """
    if "{{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        value = template_value(lookup(document, match.group(1)))
        return quote(value, safe="") if url_encode else value

    return _TEMPLATE.sub(replace, text)


def lookup(document: Any, path: str) -> Any:
    """The value at a dot path (`data.list.0.avg`), or None where there is none."""
    value = document
    for segment in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(segment)
        elif isinstance(value, list | tuple) and segment.isascii() and segment.isdigit():
            index = int(segment)
            value = value[index] if index < len(value) else None
        else:
            return None
    return value


def template_value(value: Any) -> str:
    """How a value reads inside a template (and a query or form field)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return compact_json(value).decode("utf-8", "replace")


def check_template(text: str) -> None:
    """Refuse a malformed template, with the position of the mistake."""
    start = text.find("{{")
    while start != -1:
        end = text.find("}}", start + 2)
        if end == -1:
            raise TransformError("'{{' is not closed by '}}'", start)
        _check_path(text, start + 2, end)
        start = text.find("{{", end + 2)


def _check_path(text: str, begin: int, end: int) -> None:
    inner = text[begin:end]
    path = inner.strip()
    if not path:
        raise TransformError("'{{ }}' needs a path, such as {{data.temperature}}", begin - 2)
    offset = begin + inner.index(path)
    for index, char in enumerate(path):
        if not _SEGMENT_CHAR.match(char):
            raise TransformError(
                f"{char!r} is not allowed in a path (letters, digits, _, - and .)", offset + index
            )
    if not _PATH.fullmatch(path):
        position = offset + _empty_segment(path)
        raise TransformError("a path has an empty part (two dots, or a dot at an end)", position)


def _empty_segment(path: str) -> int:
    if path.startswith("."):
        return 0
    index = path.find("..")
    return index + 1 if index != -1 else len(path) - 1
