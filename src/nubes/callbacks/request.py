"""The HTTP request a callback sends, built from its settings and a transformed message.

Pure: `build_request` makes an `OutgoingRequest` value and `sender.send`
sends it, so every method and content type is tested here without a socket.

- GET has no body: a transformed object becomes query parameters, nested keys
  as `a[b]` and list items as `a[0]` (the PHP/Rails convention most web
  frameworks parse); any other value becomes `payload=<JSON>`.
- POST, PUT and PATCH send the body in the callback's content type: JSON; the
  same flattened fields as a form; or bytes (`application/octet-stream`): the
  device's raw data when `payload` is empty, else the transformed value (a
  string as its UTF-8 bytes, anything else as JSON).
- Every request carries `User-Agent`, `X-Nubes-Delivery` and
  `Idempotency-Key` (the delivery id, the same on every retry) and
  `X-Nubes-Message`, so a receiver can deduplicate. A user header of those
  names, or of `Content-Length`, `Transfer-Encoding`, `Connection` or
  `Host`, is dropped (`RESERVED_HEADERS`); a user `Content-Type` wins over ours.
- With a `secret`: `X-Nubes-Timestamp: <unix seconds>` and
  `X-Nubes-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`.

Verifying a signature on the receiving side (reject old timestamps too, so a
captured request cannot be replayed later)::

    import hashlib, hmac, time

    def verified(secret: str, headers, body: bytes, tolerance: int = 300) -> bool:
        timestamp = headers["X-Nubes-Timestamp"]
        if abs(time.time() - int(timestamp)) > tolerance:
            return False
        mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        return hmac.compare_digest("sha256=" + mac.hexdigest(), headers["X-Nubes-Signature"])

Templates can put message values into header values, so a header that would
break the HTTP framing (CR, LF or another control character, non-ASCII text,
a name that is not an HTTP token) raises `RequestError`, which is also a
`ValueError`: the dispatcher records it as a failed attempt with its reason,
the API refuses such settings at save time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from nubes.callbacks.model import LOGGED_BODY_BYTES, CallbackConfig, OutgoingRequest
from nubes.callbacks.transform import SKIP, compact_json, render_template, template_value
from nubes.errors import NubesError

SIGNATURE_HEADER: Final = "X-Nubes-Signature"
TIMESTAMP_HEADER: Final = "X-Nubes-Timestamp"
RESERVED_HEADERS: Final = frozenset(
    {
        "user-agent",
        "x-nubes-delivery",
        "x-nubes-message",
        "x-nubes-timestamp",
        "x-nubes-signature",
        "idempotency-key",
        "content-length",
        "transfer-encoding",
        "connection",
        "host",
    }
)
"""Header names (lower case) a callback cannot set: ours, or HTTP framing."""

REDACTED: Final = "[redacted]"
_SECRET_NAMES: Final = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_WORDS: Final = ("token", "secret", "key", "password", "passwd", "auth", "session")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")


class RequestError(NubesError, ValueError):
    """A callback whose request cannot be sent as HTTP (e.g. CR/LF in a header)."""


def build_request(
    callback: CallbackConfig,
    document: Mapping[str, Any],
    transformed: Any,
    raw: bytes,
    *,
    delivery_id: uuid.UUID,
    message_id: uuid.UUID,
    timestamp: int,
    user_agent: str,
) -> OutgoingRequest:
    """The request for one delivery attempt; raises `RequestError` for unsafe headers."""
    if transformed is SKIP:
        raise RequestError("the payload skipped this delivery: there is nothing to send")
    body = b"" if callback.method == "GET" else encode_body(callback, transformed, raw)
    url = request_url(callback, document, transformed)
    headers = [
        *user_headers(callback, document),
        *nubes_headers(delivery_id, message_id, user_agent),
    ]
    if body_type := content_type(callback, headers):
        headers.append(("Content-Type", body_type))
    if callback.secret:
        headers.extend(signature_headers(callback.secret, timestamp, body))
    return OutgoingRequest(callback.method, url, tuple(headers), body, secret_headers(callback))


def content_type(callback: CallbackConfig, headers: list[tuple[str, str]]) -> str | None:
    """Ours for a request with a body, unless the callback sets its own."""
    if callback.method == "GET" or any(name.lower() == "content-type" for name, _ in headers):
        return None
    return callback.content_type


def secret_headers(callback: CallbackConfig) -> frozenset[str]:
    """The headers (as named in the request) whose values the log redacts."""
    names = {header.name for header in callback.headers if looks_secret(header.name)}
    if callback.secret:
        names.add(SIGNATURE_HEADER)
    return frozenset(names)


# --- URL and body --------------------------------------------------------------------------


def request_url(callback: CallbackConfig, document: Mapping[str, Any], transformed: Any) -> str:
    """The URL with templates filled in, query parameters and (for GET) the payload added."""
    params = [
        (param.name, render_template(param.value, document, url_encode=False))
        for param in callback.query_params
    ]
    if callback.method == "GET":
        params.extend(fields(transformed))
    return with_query(render_template(callback.url, document, url_encode=True), params)


def with_query(url: str, params: Iterable[tuple[str, str]]) -> str:
    """`url` with `params` appended to its query string (spaces as %20)."""
    _check_url(url)
    extra = urlencode(list(params), quote_via=quote)
    if not extra:
        return url
    parts = urlsplit(url)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def _check_url(url: str) -> None:
    if any(char in url for char in "\r\n\t\x00 "):
        raise RequestError("the URL contains whitespace or a control character")


def encode_body(callback: CallbackConfig, transformed: Any, raw: bytes) -> bytes:
    """The body of a POST, PUT or PATCH in the callback's content type."""
    if callback.content_type == "application/x-www-form-urlencoded":
        return urlencode(fields(transformed)).encode("ascii")
    if callback.content_type == "application/octet-stream":
        if not callback.payload.strip():
            return raw
        if isinstance(transformed, str):
            return transformed.encode("utf-8", "surrogatepass")
    return compact_json(transformed)


def fields(value: Any) -> list[tuple[str, str]]:
    """Query or form fields: an object flattened, anything else as `payload=<JSON>`."""
    if isinstance(value, Mapping):
        return flatten(value)
    return [("payload", compact_json(value).decode("utf-8", "replace"))]


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Name/value pairs: `{"a": {"b": 1}, "l": [2]}` → `[("a[b]", "1"), ("l[0]", "2")]`.

    Scalars read as in templates (strings as-is, null as nothing, others as
    JSON text); empty objects and lists give no field.
    """
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return [(prefix, template_value(value))]
    pairs: list[tuple[str, str]] = []
    for key, item in items:
        pairs.extend(flatten(item, f"{prefix}[{key}]" if prefix else str(key)))
    return pairs


# --- headers -------------------------------------------------------------------------------


def user_headers(callback: CallbackConfig, document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The callback's headers with templates filled in, minus `RESERVED_HEADERS`."""
    headers: list[tuple[str, str]] = []
    for header in callback.headers:
        value = render_template(header.value, document, url_encode=False).strip(" \t")
        check_header(header.name, value)
        if header.name.lower() not in RESERVED_HEADERS:
            headers.append((header.name, value))
    return headers


def check_header(name: str, value: str) -> None:
    """Raise `RequestError` for a header HTTP cannot carry as it is."""
    if not _TOKEN.fullmatch(name):
        raise RequestError(f"the header name {name!r} is not a valid HTTP header name")
    if not _FIELD_VALUE.fullmatch(value):
        raise RequestError(
            f"the value of header {name!r} contains a line break, a control character"
            " or non-ASCII text"
        )


def nubes_headers(
    delivery_id: uuid.UUID, message_id: uuid.UUID, user_agent: str
) -> list[tuple[str, str]]:
    delivery = str(delivery_id)
    check_header("User-Agent", user_agent)
    return [
        ("User-Agent", user_agent),
        ("X-Nubes-Delivery", delivery),
        ("X-Nubes-Message", str(message_id)),
        ("Idempotency-Key", delivery),
    ]


def looks_secret(name: str) -> bool:
    """Whether a header or query parameter name suggests a credential."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS)


# --- signatures ----------------------------------------------------------------------------


def signature_headers(secret: str, timestamp: int, body: bytes) -> list[tuple[str, str]]:
    return [
        (TIMESTAMP_HEADER, str(timestamp)),
        (SIGNATURE_HEADER, f"sha256={sign(secret, timestamp, body)}"),
    ]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>." + body` under `secret`."""
    message = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: int | str, body: bytes, signature_header: str) -> bool:
    """Whether `X-Nubes-Signature` (`sha256=<hex>`) signs `body` at `timestamp`."""
    try:
        expected = f"sha256={sign(secret, int(timestamp), body)}"
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), signature_header.strip().encode("utf-8"))


# --- the delivery log ----------------------------------------------------------------------


def log_request(request: OutgoingRequest) -> dict[str, Any]:
    """The request as the delivery log keeps it: secrets redacted, the body cut short."""
    secret = {name.lower() for name in request.secret_headers}
    headers = [
        [name, REDACTED if name.lower() in secret else value] for name, value in request.headers
    ]
    return {
        "method": request.method,
        "url": redact_url(request.url),
        "headers": headers,
        **logged_body(request.body),
    }


def logged_body(data: bytes) -> dict[str, Any]:
    """The first `LOGGED_BODY_BYTES` of a body as the log keeps them.

    Text (UTF-8 without NUL, a character cut at the end allowed) stays
    text; anything else, e.g. a device's raw bytes sent as
    `application/octet-stream`, is kept in base64 (`body_encoding`), since
    PostgreSQL's JSON cannot hold NUL and replacement characters would lose
    the bytes.
    """
    head = data[:LOGGED_BODY_BYTES]
    text = head.decode("utf-8", "ignore") if _is_text(head) else None
    return {
        "body": text if text is not None else base64.b64encode(head).decode("ascii"),
        "body_encoding": "utf-8" if text is not None else "base64",
        "body_truncated": len(data) > LOGGED_BODY_BYTES,
    }


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        # Only a character cut by the 4 KB limit is forgiven.
        return err.start >= len(head) - 3 and err.reason == "unexpected end of data"
    return True


def redact_url(url: str) -> str:
    """`url` without a password and without the values of secret-looking parameters."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", f":{REDACTED}@", 1)
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(looks_secret(name) for name, _ in pairs):
        redacted = [(name, REDACTED if looks_secret(name) else value) for name, value in pairs]
        query = urlencode(redacted, quote_via=quote, safe="[]")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))
