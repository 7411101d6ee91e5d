"""The request a callback sends: URL, query, headers, body, signature, and its log entry."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nubes.callbacks.model import (
    CONTENT_TYPES,
    LOGGED_BODY_BYTES,
    METHODS,
    CallbackConfig,
    NameValue,
    OutgoingRequest,
)
from nubes.callbacks.request import (
    RESERVED_HEADERS,
    RequestError,
    build_request,
    flatten,
    log_request,
    logged_body,
    sign,
    verify,
)
from nubes.callbacks.transform import SKIP
from nubes.errors import NubesError

DELIVERY = uuid.UUID("01900000-0000-7000-8000-000000000001")
MESSAGE = uuid.UUID("01900000-0000-7000-8000-000000000002")
TIMESTAMP = 1719835200
USER_AGENT = "nubes/0.1.0"
RAW = b"\xa1\x00\xff raw device bytes"
DOCUMENT: dict[str, Any] = {
    "id": str(MESSAGE),
    "data": {
        "hygrometer": {"temperature": {"measurements": [{"avg": 21.5}, {"avg": 22.0}]}},
        "label": "room 1/a&b",
    },
    "device": {"name": "CHESTER 1", "serial_number": 2159018247},
}
TRANSFORMED = {"t": 21.5, "h": {"avg": 42, "ok": True}, "list": [1, "two", None], "s": "a b&c"}
FLAT = [
    ("t", "21.5"),
    ("h[avg]", "42"),
    ("h[ok]", "true"),
    ("list[0]", "1"),
    ("list[1]", "two"),
    ("list[2]", ""),
    ("s", "a b&c"),
]


def callback(**changes: Any) -> CallbackConfig:
    base = CallbackConfig(
        id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        group_id=uuid.uuid4(),
        version=1,
        name="test",
        enabled=True,
        method="POST",
        url="https://example.com/hook",
        query_params=(),
        headers=(),
        content_type="application/json",
        payload="{}",
    )
    return dataclasses.replace(base, **changes)


def build(config: CallbackConfig, transformed: Any = None, **kwargs: Any) -> OutgoingRequest:
    options: dict[str, Any] = {
        "delivery_id": DELIVERY,
        "message_id": MESSAGE,
        "timestamp": TIMESTAMP,
        "user_agent": USER_AGENT,
    }
    value = TRANSFORMED if transformed is None else transformed
    return build_request(config, DOCUMENT, value, RAW, **(options | kwargs))


def header(request: OutgoingRequest, name: str) -> str | None:
    values = [value for key, value in request.headers if key.lower() == name.lower()]
    assert len(values) <= 1, f"{name} appears {len(values)} times"
    return values[0] if values else None


def query(request: OutgoingRequest) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(request.url).query, keep_blank_values=True)


# --- methods and content types -------------------------------------------------------------


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_and_content_type(method: str, content_type: str) -> None:
    request = build(callback(method=method, content_type=content_type))
    assert request.method == method
    if method == "GET":
        assert request.body == b""
        assert header(request, "Content-Type") is None
        assert query(request) == FLAT
        return
    assert header(request, "Content-Type") == content_type
    assert request.url == "https://example.com/hook"
    if content_type == "application/json":
        assert json.loads(request.body) == TRANSFORMED
        assert b" " not in request.body.replace(b"a b&c", b"")
    elif content_type == "application/x-www-form-urlencoded":
        assert parse_qsl(request.body.decode("ascii"), keep_blank_values=True) == FLAT
    else:
        assert json.loads(request.body) == TRANSFORMED


def test_octet_stream_sends_the_raw_bytes_when_payload_is_empty() -> None:
    config = callback(content_type="application/octet-stream", payload="  ")
    assert build(config, DOCUMENT).body == RAW


def test_octet_stream_sends_a_transformed_string_as_utf8() -> None:
    config = callback(content_type="application/octet-stream", payload="$string(x)")
    assert build(config, "žluťoučký kůň").body == "žluťoučký kůň".encode()


@pytest.mark.parametrize(
    ("value", "query_value"), [(21.5, "21.5"), ("a b", '"a b"'), ([1, 2], "[1,2]")]
)
def test_get_sends_a_non_object_as_payload(value: Any, query_value: str) -> None:
    request = build(callback(method="GET"), value)
    assert query(request) == [("payload", query_value)]


def test_json_keeps_unicode_and_types() -> None:
    request = build(callback(), {"name": "kůň", "n": 1, "f": 1.5, "z": None, "b": False})
    assert request.body == '{"name":"kůň","n":1,"f":1.5,"z":null,"b":false}'.encode()


def test_a_skipped_delivery_has_no_request() -> None:
    with pytest.raises(RequestError):
        build(callback(), SKIP)


# --- URL, query parameters and templates ---------------------------------------------------


def test_the_cloud_md_url_template() -> None:
    url = "http://my.callback.cloud/?temperature={{data.hygrometer.temperature.measurements.0.avg}}"
    request = build(callback(url=url))
    assert request.url == "http://my.callback.cloud/?temperature=21.5"


def test_query_parameters_are_appended_and_encoded() -> None:
    config = callback(
        url="https://example.com/{{device.name}}/in?keep=1#frag",
        query_params=(
            NameValue("serial", "{{device.serial_number}}"),
            NameValue("label", "{{data.label}}"),
            NameValue("a b", "x=y"),
        ),
    )
    request = build(config)
    parts = urlsplit(request.url)
    assert parts.path == "/CHESTER%201/in"
    assert parts.fragment == "frag"
    assert parts.query == "keep=1&serial=2159018247&label=room%201%2Fa%26b&a%20b=x%3Dy"
    assert query(request) == [
        ("keep", "1"),
        ("serial", "2159018247"),
        ("label", "room 1/a&b"),
        ("a b", "x=y"),
    ]


def test_get_puts_configured_parameters_before_the_payload() -> None:
    config = callback(method="GET", query_params=(NameValue("k", "v"),))
    assert query(build(config, {"x": 1})) == [("k", "v"), ("x", "1")]


def test_a_url_template_cannot_inject_a_path_or_query() -> None:
    config = callback(url="https://example.com/{{data.label}}")
    assert build(config).url == "https://example.com/room%201%2Fa%26b"


def test_a_url_with_a_line_break_is_refused() -> None:
    with pytest.raises(RequestError):
        build(callback(url="https://example.com/\r\nX: y"))


# --- headers -------------------------------------------------------------------------------


def test_our_headers() -> None:
    request = build(callback())
    assert header(request, "User-Agent") == USER_AGENT
    assert header(request, "X-Nubes-Delivery") == str(DELIVERY)
    assert header(request, "Idempotency-Key") == str(DELIVERY)
    assert header(request, "X-Nubes-Message") == str(MESSAGE)
    assert header(request, "X-Nubes-Signature") is None
    assert header(request, "X-Nubes-Timestamp") is None


def test_user_headers_with_templates() -> None:
    config = callback(
        headers=(
            NameValue("X-Device", "{{device.name}} ({{device.serial_number}})"),
            NameValue("X-Label", "{{data.label}}"),
        )
    )
    request = build(config)
    assert request.headers[:2] == (
        ("X-Device", "CHESTER 1 (2159018247)"),
        ("X-Label", "room 1/a&b"),
    )


@pytest.mark.parametrize("name", ["user-agent", "X-Nubes-Delivery", "Idempotency-Key", "Host"])
def test_reserved_user_headers_are_dropped(name: str) -> None:
    assert name.lower() in RESERVED_HEADERS
    request = build(callback(headers=(NameValue(name, "mine"),)))
    assert header(request, name) != "mine"


def test_a_user_content_type_wins() -> None:
    config = callback(headers=(NameValue("content-type", "application/vnd.acme+json"),))
    request = build(config)
    assert header(request, "Content-Type") == "application/vnd.acme+json"


@pytest.mark.parametrize(
    ("headers", "document_value"),
    [
        ((NameValue("X-A", "{{data.evil}}"),), "x\r\nInjected: yes"),
        ((NameValue("X-A", "{{data.evil}}"),), "x\nInjected: yes"),
        ((NameValue("X-A", "{{data.evil}}"),), "x\x00"),
        ((NameValue("X-A", "{{data.evil}}"),), "kůň"),
        ((NameValue("X-A", "a\r\nb"),), ""),
        ((NameValue("X-A\r\nB", "v"),), ""),
        ((NameValue("X A", "v"),), ""),
        ((NameValue("", "v"),), ""),
    ],
)
def test_headers_that_break_http_are_refused(
    headers: tuple[NameValue, ...], document_value: str
) -> None:
    document = {"data": {"evil": document_value}}
    config = callback(headers=headers)
    with pytest.raises(RequestError) as caught:
        build_request(
            config,
            document,
            {},
            b"",
            delivery_id=DELIVERY,
            message_id=MESSAGE,
            timestamp=TIMESTAMP,
            user_agent=USER_AGENT,
        )
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, NubesError)


# --- signatures ----------------------------------------------------------------------------


def test_signature_known_answer() -> None:
    # Computed once with Python's hmac module; the message is "<timestamp>." + body.
    expected = "f3ea192db1b1f2727269a2d916931d483f9f8f33320503eba743b3a52122c3e9"
    message = b"1719835200." + b'{"a":1}'
    assert hmac.new(b"s3cret", message, hashlib.sha256).hexdigest() == expected
    assert sign("s3cret", 1719835200, b'{"a":1}') == expected
    assert verify("s3cret", 1719835200, b'{"a":1}', f"sha256={expected}")


@pytest.mark.parametrize("method", METHODS)
def test_a_secret_signs_timestamp_and_body(method: str) -> None:
    request = build(callback(method=method, secret="s3cret"))
    assert header(request, "X-Nubes-Timestamp") == str(TIMESTAMP)
    mac = hmac.new(b"s3cret", f"{TIMESTAMP}.".encode() + request.body, hashlib.sha256)
    assert header(request, "X-Nubes-Signature") == f"sha256={mac.hexdigest()}"
    signature = header(request, "X-Nubes-Signature")
    assert signature is not None
    assert verify("s3cret", TIMESTAMP, request.body, signature)
    assert verify("s3cret", str(TIMESTAMP), request.body, signature)
    assert not verify("other", TIMESTAMP, request.body, signature)
    assert not verify("s3cret", TIMESTAMP + 1, request.body, signature)
    assert not verify("s3cret", TIMESTAMP, request.body + b" ", signature)
    assert not verify("s3cret", TIMESTAMP, request.body, signature.removeprefix("sha256="))
    assert not verify("s3cret", "not a number", request.body, signature)


# --- redaction and the delivery log --------------------------------------------------------


def test_secret_headers() -> None:
    names = [
        "Authorization",
        "proxy-authorization",
        "X-API-Key",
        "Cookie",
        "X-Auth-Token",
        "X-Client-Secret",
        "X-Password",
        "Plain",
    ]
    config = callback(headers=tuple(NameValue(n, "v") for n in names), secret="s3cret")
    request = build(config)
    assert request.secret_headers == frozenset({*names[:-1], "X-Nubes-Signature"})


def test_log_request_redacts_secrets() -> None:
    config = callback(
        method="GET",
        url="https://user:pw@example.com/hook?api_key=abc&keep=1",
        query_params=(NameValue("token", "t0k"), NameValue("n", "1")),
        headers=(NameValue("Authorization", "Bearer xyz"), NameValue("X-Plain", "visible")),
        secret="s3cret",
    )
    logged = log_request(build(config, {"password": "pw2", "x": "y"}))
    assert logged["method"] == "GET"
    assert logged["url"] == (
        "https://user:[redacted]@example.com/hook?api_key=[redacted]&keep=1"
        "&token=[redacted]&n=1&password=[redacted]&x=y"
    )
    headers = dict(logged["headers"])
    assert headers["Authorization"] == "[redacted]"
    assert headers["X-Nubes-Signature"] == "[redacted]"
    assert headers["X-Plain"] == "visible"
    assert headers["X-Nubes-Timestamp"] == str(TIMESTAMP)
    assert logged["body"] == ""
    assert logged["body_truncated"] is False
    assert "xyz" not in json.dumps(logged)


def test_log_request_keeps_a_plain_url_as_it_is() -> None:
    request = build(callback(url="https://example.com/a%20b?x=1&y=a+b"))
    assert log_request(request)["url"] == "https://example.com/a%20b?x=1&y=a+b"


def test_log_request_cuts_the_body() -> None:
    body = "ž" * LOGGED_BODY_BYTES  # two bytes each
    request = OutgoingRequest("POST", "https://example.com/", (), body.encode())
    logged = log_request(request)
    assert logged["body_truncated"] is True
    assert logged["body"] == "ž" * (LOGGED_BODY_BYTES // 2)
    assert logged["body_encoding"] == "utf-8"
    cut = OutgoingRequest("POST", "https://example.com/", (), b"a" + body.encode())
    assert log_request(cut)["body"] == "a" + "ž" * (LOGGED_BODY_BYTES // 2 - 1)  # half dropped
    odd = OutgoingRequest("POST", "https://example.com/", (), b"\xff" + b"a" * 10)
    assert log_request(odd) == {
        "method": "POST",
        "url": "https://example.com/",
        "headers": [],
        "body": base64.b64encode(b"\xff" + b"a" * 10).decode(),
        "body_encoding": "base64",
        "body_truncated": False,
    }


@pytest.mark.parametrize(
    ("data", "encoding"),
    [(b"", "utf-8"), (b"plain", "utf-8"), (b"a\x00b", "base64"), (b"\xc3\x28", "base64")],
)
def test_logged_body_keeps_text_as_text_and_bytes_in_base64(data: bytes, encoding: str) -> None:
    logged = logged_body(data)
    assert logged["body_encoding"] == encoding
    shown = logged["body"].encode() if encoding == "utf-8" else base64.b64decode(logged["body"])
    assert shown == data
    json.dumps(log_request(build(callback())))


# --- flatten -------------------------------------------------------------------------------


def test_flatten() -> None:
    assert flatten(TRANSFORMED) == FLAT
    assert flatten({"a": {"b": {"c": [[1]]}}}) == [("a[b][c][0][0]", "1")]
    assert flatten({"e": {}, "l": []}) == []
    assert flatten([1, {"k": "v"}]) == [("0", "1"), ("1[k]", "v")]
    assert flatten(5, "p") == [("p", "5")]


JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_LIKE)
def test_flatten_never_raises(value: Any) -> None:
    pairs = flatten(value)
    assert all(isinstance(name, str) and isinstance(text, str) for name, text in pairs)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=5), JSON_LIKE, max_size=4), st.sampled_from(METHODS))
def test_any_object_builds_a_request(value: dict[str, Any], method: str) -> None:
    for content_type in CONTENT_TYPES:
        request = build(callback(method=method, content_type=content_type), value)
        log_request(request)
