"""The message document, JSONata payloads under limits, and `{{path}}` templates."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nubes.callbacks import transform
from nubes.callbacks.transform import (
    LIMITS,
    SKIP,
    Limits,
    TransformError,
    check_template,
    compile_payload,
    message_document,
    render_template,
)
from nubes.errors import NubesError

CLOUD_MD_PAYLOAD = """{"external_temperature": data.hygrometer.temperature,
 "external_humidity": data.hygrometer.humidity,
 "device_orientation": data.accelerometer.orientation}"""
CLOUD_MD_URL = (
    "http://my.callback.cloud/?temperature={{data.hygrometer.temperature.measurements.0.avg}}"
)

MESSAGE_ID = uuid.UUID("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
DEVICE_ID = uuid.UUID("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a")
ORG_ID = uuid.UUID("7d3f2a9e-1b4c-4d5e-8f6a-9b0c1d2e3f4a")
GROUP_ID = uuid.UUID("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")
DEVICE = {"id": DEVICE_ID, "name": "CHESTER 1", "serial": 2159018247, "label": "hsn:2159018247"}

CLIME: dict[str, Any] = {
    "message": {"version": 1, "sequence": 12, "uptime": 10800},
    "hygrometer": {
        "temperature": {"measurements": [{"min": 21.1, "max": 21.9, "avg": 21.5}]},
        "humidity": {"measurements": [{"min": 40.0, "max": 44.0, "avg": 42.0}]},
    },
    "accelerometer": {"orientation": 1},
    "flags": [True, False],
    "note": None,
}


def row(**changes: Any) -> dict[str, Any]:
    """A stored message row as the store hands it out."""
    base = {
        "id": MESSAGE_ID,
        "created_at": datetime(2024, 7, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "organization_id": ORG_ID,
        "group_id": GROUP_ID,
        "device_id": DEVICE_ID,
        "session_id": 42,
        "type": "data",
        "direction": "up",
        "body": CLIME,
        "raw": b"\x01\x02",
        "codec_hash": "abc",
        "decode_state": "decoded",
        "decode_error": None,
        "downlink_id": None,
    }
    return base | changes


def document() -> dict[str, Any]:
    return message_document(row(), DEVICE)


# --- the message document ------------------------------------------------------------------


def test_message_document_is_the_api_view_plus_the_device() -> None:
    assert document() == {
        "id": str(MESSAGE_ID),
        "created_at": "2024-07-01T12:00:00.123456Z",
        "organization_id": str(ORG_ID),
        "group_id": str(GROUP_ID),
        "device_id": str(DEVICE_ID),
        "label": "hsn:2159018247",
        "session_id": 42,
        "type": "data",
        "direction": "up",
        "data": CLIME,
        "raw": "AQI=",
        "codec_hash": "abc",
        "decode_state": "decoded",
        "decode_error": None,
        "downlink_id": None,
        "device": {
            "id": str(DEVICE_ID),
            "name": "CHESTER 1",
            "serial_number": 2159018247,
            "label": "hsn:2159018247",
        },
    }


def test_message_document_accepts_a_view_already_made() -> None:
    view = {key: value for key, value in document().items() if key != "device"}
    view["id"] = MESSAGE_ID
    assert message_document(view, DEVICE) == document()


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05Z"),
        (
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-02T01:04:05Z",
        ),
    ],
)
def test_times_are_utc_with_z(moment: datetime, text: str) -> None:
    assert message_document(row(created_at=moment), DEVICE)["created_at"] == text


def test_a_session_message_hides_the_passkey() -> None:
    session = row(type="session", body={"ble_passkey": "123456", "firmware": "v3"})
    result = message_document(session, DEVICE)
    assert result["data"] == {"firmware": "v3"}
    assert result["raw"] == ""


# --- JSONata payloads ----------------------------------------------------------------------


def test_the_cloud_md_example() -> None:
    payload = compile_payload(CLOUD_MD_PAYLOAD)
    assert payload.source == CLOUD_MD_PAYLOAD
    assert payload.apply(document()) == {
        "external_temperature": CLIME["hygrometer"]["temperature"],
        "external_humidity": CLIME["hygrometer"]["humidity"],
        "device_orientation": 1,
    }


def test_payload_reads_the_device() -> None:
    payload = compile_payload('device.name & " " & $string(device.serial_number)')
    assert payload.apply(document()) == "CHESTER 1 2159018247"


@pytest.mark.parametrize("source", ["", "   ", "\n\t"])
def test_an_empty_payload_sends_the_message_as_is(source: str) -> None:
    message = document()
    assert compile_payload(source).apply(message) is message


@pytest.mark.parametrize("source", ["null", "nothing", "data.missing.field", "$not_bound"])
def test_undefined_or_null_skips(source: str) -> None:
    assert compile_payload(source).apply(document()) is SKIP


@pytest.mark.parametrize(("source", "value"), [("false", False), ("0", 0), ("[]", []), ('""', "")])
def test_falsy_results_are_sent(source: str, value: Any) -> None:
    assert compile_payload(source).apply(document()) == value


def test_skip_is_one_falsy_value() -> None:
    assert repr(SKIP) == "SKIP"
    assert not SKIP
    assert type(SKIP)() is SKIP


@pytest.mark.parametrize(
    ("source", "position", "code"),
    [
        ('{"a": 1', 7, "S0203"),
        ("a b", 3, "S0201"),
        ('"abc', 4, "S0101"),
        ("data.", 5, "S0207"),
    ],
)
def test_syntax_errors_carry_their_position(source: str, position: int, code: str) -> None:
    with pytest.raises(TransformError) as caught:
        compile_payload(source)
    assert (caught.value.position, caught.value.code) == (position, code)
    assert caught.value.message == str(caught.value)
    assert isinstance(caught.value, NubesError)


def test_evaluation_errors_are_transform_errors() -> None:
    with pytest.raises(TransformError) as caught:
        compile_payload('1 + "a"').apply(document())
    assert caught.value.code == "T2002"
    assert caught.value.position == 3
    assert '"+"' in caught.value.message


HOSTILE = [
    ("($f := function($x){$f($x)}; $f(1))", "exceeded 200000 steps"),
    ("($f := function($x){1 + $f($x)}; $f(1))", "nested deeper than 200 levels"),
    ("[1..10000000]", "the payload is too large: an array would exceed"),
    ("[1..100000000]", "must not exceed"),
    ('$pad("", 100000000)', "must not exceed"),
    ('$pad("", 5000000)', "the payload is too large: a string would exceed"),
    ('($x := $pad("", 900000); [$x, $x, $x])', "the payload is too large: the result would"),
    ("$count([1..90000].($ * 2))", "exceeded 200000 steps"),
    ("[1..99999] ~> $map(function($v){[1..99999]})", "took longer than 100 ms"),
    ('$match($pad("", 50000, "a") & "!", /(a|a)*$/)', "took longer than 100 ms"),
    # Quadratic string building: the clock or the string limit stops it, whichever comes first.
    (
        '$reduce([1..99999], function($a, $b){$a & "xxxxxxxxxxxx"}, "")',
        "took longer than 100 ms|a string would exceed",
    ),
]


@pytest.mark.parametrize(("source", "reason"), HOSTILE)
def test_hostile_payloads_fail_fast(source: str, reason: str) -> None:
    payload = compile_payload(source)
    started = time.perf_counter()
    with pytest.raises(TransformError) as caught:
        payload.apply(document())
    # A guard against evaluation without limits (minutes, or memory
    # exhausted), not a speed target: jlens builds `[1..10000000]` before it
    # checks the array limit, 50-800 ms alone and over 1 s on a loaded
    # machine. Speed is measured in bench/callbacks.py.
    assert time.perf_counter() - started < 5.0
    assert re.search(reason, caught.value.message)


def test_limits_are_values_passed_in() -> None:
    assert dataclasses.asdict(LIMITS) == {
        "timeout": 0.1,
        "max_depth": 200,
        "max_steps": 200_000,
        "max_string_length": 1_000_000,
        "max_array_length": 100_000,
        "max_result_size": 1_000_000,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        LIMITS.timeout = 5  # type: ignore[misc]
    tight = compile_payload("[1..1000].($ * 2)", Limits(max_steps=50))
    with pytest.raises(TransformError, match="exceeded 50 steps"):
        tight.apply(document())


def test_a_normal_payload_is_far_from_the_limits() -> None:
    payload = compile_payload(CLOUD_MD_PAYLOAD)
    message = document()
    started = time.perf_counter()
    for _ in range(1000):
        payload.apply(message)
    assert time.perf_counter() - started < 0.5


# --- templates -----------------------------------------------------------------------------


def test_the_cloud_md_url_template() -> None:
    url = render_template(CLOUD_MD_URL, document(), url_encode=True)
    assert url == "http://my.callback.cloud/?temperature=21.5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{device.name}}", "CHESTER 1"),
        ("{{  device.name\t}}", "CHESTER 1"),
        ("{{data.message.sequence}}", "12"),
        ("{{data.flags.0}}|{{data.flags.1}}", "true|false"),
        ("{{data.accelerometer}}", '{"orientation":1}'),
        ("{{data.flags}}", "[true,false]"),
        ("{{data.note}}", ""),
        ("[{{data.missing.deeper}}]", "[]"),
        ("{{data.flags.7}}", ""),
        ("{{data.message.sequence.0}}", ""),
        ("{{device.serial_number}}/{{label}}", "2159018247/hsn:2159018247"),
        ("{{ }} {{bad!}} {{unclosed", "{{ }} {{bad!}} {{unclosed"),
    ],
)
def test_render_template(text: str, expected: str) -> None:
    assert render_template(text, document(), url_encode=False) == expected


def test_url_encoding_covers_every_reserved_character() -> None:
    doc = {"v": "a b/c?d=e&f#g%h+ü"}
    assert (
        render_template("{{v}}", doc, url_encode=True) == "a%20b%2Fc%3Fd%3De%26f%23g%25h%2B%C3%BC"
    )
    assert render_template("{{v}}", doc, url_encode=False) == doc["v"]


def test_text_without_templates_is_returned_as_it_is() -> None:
    text = "https://example.com/{not}/a template"
    assert render_template(text, document(), url_encode=True) is text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "{{a}}",
        "{{ a.b.0.c }}",
        "x{{a-b_c}}y{{d}}z",
        "{single} }}",
        CLOUD_MD_URL,
    ],
)
def test_check_template_accepts(text: str) -> None:
    check_template(text)


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("abc{{", 3, "not closed"),
        ("{{a}} {{b", 6, "not closed"),
        ("x{{ }}", 1, "needs a path"),
        ("{{a b}}", 3, "' ' is not allowed"),
        ("{{ a!}}", 4, "'!' is not allowed"),
        ("{{a..b}}", 4, "empty part"),
        ("{{.a}}", 2, "empty part"),
        ("{{a.}}", 3, "empty part"),
    ],
)
def test_check_template_refuses(text: str, position: int, words: str) -> None:
    with pytest.raises(TransformError) as caught:
        check_template(text)
    assert caught.value.position == position
    assert words in caught.value.message


JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
PATH_TEXT = st.text(alphabet="ab0.{} \t-_!", max_size=30)


@settings(max_examples=300, deadline=None)
@given(JSON_LIKE, PATH_TEXT, st.booleans())
def test_render_template_never_raises(doc: Any, text: str, url_encode: bool) -> None:
    result = render_template(text, {"a": doc, "b": [doc]}, url_encode=url_encode)
    assert isinstance(result, str)
    if "{{" not in text:
        assert result == text


@settings(max_examples=300, deadline=None)
@given(PATH_TEXT)
def test_a_checked_template_renders_without_leftover_braces(text: str) -> None:
    position = refused_at(text)
    if position is None:
        assert "{{" not in render_template(text, {}, url_encode=False)
    else:
        assert 0 <= position <= len(text)


def refused_at(text: str) -> int | None:
    """Where `check_template` refuses `text`, or None if it accepts it."""
    try:
        check_template(text)
    except TransformError as err:
        return -1 if err.position is None else err.position
    return None


def test_a_payload_over_its_limits_again_and_again_is_suspended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(transform.time, "monotonic", lambda: clock[0])
    payload = compile_payload("$count([1..data.n])")
    small, big = {"data": {"n": 10}}, {"data": {"n": 1_000_000}}
    assert payload.apply(small) == 10
    for _ in range(transform.SUSPEND_AFTER - 1):
        with pytest.raises(TransformError, match="too large"):
            payload.apply(big)
    assert payload.apply(small) == 10  # a success resets the count
    for _ in range(transform.SUSPEND_AFTER):
        with pytest.raises(TransformError, match="too large"):
            payload.apply(big)
    with pytest.raises(TransformError, match="not evaluated for 60 s") as suspended:
        payload.apply(small)
    assert suspended.value.code == "suspended"
    clock[0] += transform.SUSPEND_SECONDS
    assert payload.apply(small) == 10
