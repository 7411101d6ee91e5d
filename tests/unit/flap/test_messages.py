"""Messages: uplink parsing and downlink building, against the firmware's own vectors.

Vectors come from the CHESTER SDK (`tests/subsys/ctr_cloud/src/test_msg.c` and
the boot exchange of `test_cloud.c`, whose datagrams are in `data/`).
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nubes.errors import MessageError
from nubes.flap import (
    CreateSession,
    GetTimestamp,
    MessageType,
    UploadCodec,
    UploadConfig,
    UploadData,
    UploadFirmware,
    UploadShell,
    UploadStats,
    encode_download_config,
    encode_download_data,
    encode_download_shell,
    encode_set_session,
    encode_set_timestamp,
    open_envelope,
    parse_uplink,
)

SHELL_ID = bytes.fromhex("018dd0f29d0175f2abaf092b8d2f9f2b")
CONFIG_LINES = [
    "app config interval-sample 10",
    "app config interval-report 60",
    "app config backup-report-connected true",
]


def message_of(datagram: bytes) -> bytes:
    """The data of the single-fragment packet in a MAC-envelope datagram."""
    return open_envelope(datagram).packet[2:]


@pytest.fixture
def trace_messages(boot_trace: list[tuple[bytes, bytes | None]]) -> dict[str, bytes]:
    return {
        "create_session": message_of(boot_trace[0][0]),
        "set_session": message_of(boot_trace[1][1] or b""),
        "upload_config": message_of(boot_trace[3][0]),
        "download_config": message_of(boot_trace[4][1] or b""),
        "download_shell": message_of(boot_trace[7][1] or b""),
        "upload_shell": message_of(boot_trace[9][0]),
    }


def test_message_types() -> None:
    assert [t.value for t in MessageType] == [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
        0x80, 0x81, 0x82, 0x86, 0x87, 0x88, 0xFF,
    ]  # fmt: skip


# -- uplinks ---------------------------------------------------------------------------


def test_create_session_of_the_boot_trace(trace_messages: dict[str, bytes]) -> None:
    session = parse_uplink(trace_messages["create_session"])
    assert isinstance(session, CreateSession)
    assert session.named() == {
        "watchdog_timeout": 0,
        "serial": 2159017985,
        "vendor": "HARDWARIO",
        "product": "CHESTER-M",
        "hw_variant": "CGLS",
        "hw_revision": "R3.2",
        "fw_bundle": "com.hardwario.mockup-app",
        "fw_name": "mockup-app",
        "fw_version": "v0.0.1",
        "ble_passkey": "654123",
        "imei": 987654321098761,
        "imsi": 123456789012341,
        "modem_fw": "v1.5.0",
    }
    assert (session.serial, session.vendor, session.fw_version) == (
        2159017985,
        "HARDWARIO",
        "v0.0.1",
    )
    assert (session.imei, session.iccid) == (987654321098761, None)


def test_create_session_keeps_unknown_keys_and_odd_types() -> None:
    session = parse_uplink(b"\x00" + cbor2.dumps({1: 7, 17: "8942", 40: "x"}))
    assert isinstance(session, CreateSession)
    assert session.vendor is None  # not text
    assert session.iccid == "8942"
    assert session.named() == {"vendor": 7, "iccid": "8942", "key_40": "x"}


def test_get_timestamp() -> None:
    assert parse_uplink(b"\x01") == GetTimestamp()
    with pytest.raises(MessageError, match="no value"):
        parse_uplink(b"\x01\x00")


def test_upload_config_of_the_boot_trace(trace_messages: dict[str, bytes]) -> None:
    assert parse_uplink(trace_messages["upload_config"]) == UploadConfig(
        0x73A9151B127641BB,
        [
            "app config interval-sample 5",
            "app config interval-report 60",
            "app config backup-report-connected false",
        ],
    )


def test_upload_codecs_keep_their_cbor() -> None:
    document = cbor2.dumps({"version": 1, "fields": ["a"]})
    kinds: list[tuple[Literal["decoder", "encoder"], int]] = [("decoder", 3), ("encoder", 4)]
    for kind, type_byte in kinds:
        message = bytes([type_byte]) + bytes.fromhex("0123456789abcdef") + document
        assert parse_uplink(message) == UploadCodec(kind, 0x0123456789ABCDEF, document)


def test_upload_stats_get_their_names() -> None:
    value = cbor2.dumps({0: 3600, 1: 7, 3: -95, 6: 23003, 9: 6300, 12: 1})
    assert parse_uplink(b"\x05" + value) == UploadStats(
        {"uptime": 3600, "eest": 7, "rsrp": -95, "plmn": 23003, "earfcn": 6300, "key_12": 1}
    )


def test_upload_data_is_not_decoded() -> None:
    data = bytes.fromhex("bf0001ff")
    assert parse_uplink(b"\x06" + bytes(7) + b"\x2a" + data) == UploadData(0x2A, data)
    # not decoded means not checked either: the pipeline decodes it with its codec
    assert parse_uplink(b"\x06" + bytes(8) + b"\xff") == UploadData(0, b"\xff")


def test_upload_shell_of_the_boot_trace(trace_messages: dict[str, bytes]) -> None:
    assert parse_uplink(trace_messages["upload_shell"]) == UploadShell(
        SHELL_ID,
        [
            {"command": "app config show", "rc": 0, "output": CONFIG_LINES},
            {
                "command": "app config interval-sample",
                "rc": -22,
                "output": [
                    "interval-sample - Get/Set sample interval in seconds (format: <5-3600>)."
                ],
            },
        ],
    )


def test_upload_shell_of_the_firmware_test() -> None:
    message = bytes.fromhex(
        "07bf0150018dd0f29d0175f2abaf092b8d2f9f2b009fbf006468656c70029f686f75742068656c7063"
        "61707066636f6e666967ffffbf00636170700135029f656572726f72ffffffff"
    )
    shell = parse_uplink(message)
    assert isinstance(shell, UploadShell)
    assert shell.results == [
        {"command": "help", "rc": 0, "output": ["out help", "app", "config"]},
        {"command": "app", "rc": -22, "output": ["error"]},
    ]


@pytest.mark.parametrize(
    ("hex_message", "values"),
    [
        (
            "08bf00636170700168646f776e6c6f616404190400056f6669726d776172653a76312e302e30ff",
            {
                "target": "app",
                "type": "download",
                "max_length": 1024,
                "firmware": "firmware:v1.0.0",
            },
        ),
        (
            "08bf006361707001646e6578740250a8a89f508a084b2299641bf4a50f65ed03186404190400ff",
            {
                "target": "app",
                "type": "next",
                "id": bytes.fromhex("a8a89f508a084b2299641bf4a50f65ed"),
                "offset": 100,
                "max_length": 1024,
            },
        ),
    ],
)
def test_upload_firmware_of_the_firmware_test(hex_message: str, values: dict[str, object]) -> None:
    assert parse_uplink(bytes.fromhex(hex_message)) == UploadFirmware(values)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"", "empty message"),
        (b"\x09", "unknown message type 0x09"),
        (b"\x80\xa0", "unknown message type 0x80"),
        (b"\x00", "CREATE_SESSION: no CBOR value"),
        (b"\x00\xa1", "CREATE_SESSION: invalid CBOR"),
        (b"\x00\xa0\x00", "CREATE_SESSION: invalid CBOR: trailing bytes"),
        (b"\x00\x80", "CREATE_SESSION is not a CBOR map"),
        (b"\x00\xa1\x61a\x01", "CREATE_SESSION has a key that is not an unsigned integer"),
        (b"\x00\xa1\x20\x01", "CREATE_SESSION has a key that is not an unsigned integer"),
        (b"\x02" + bytes(8), "UPLOAD_CONFIG shorter than its hash and header"),
        (b"\x02" + bytes(8) + b"\x01\x80", "UPLOAD_CONFIG compression 0x01 not supported"),
        (b"\x02" + bytes(9) + b"\x81\x01", "UPLOAD_CONFIG lines are not an array of text"),
        (b"\x03" + bytes(8), "UPLOAD_DECODER without a codec"),
        (b"\x04" + bytes(8) + b"\xff", "UPLOAD_ENCODER: invalid CBOR"),
        (b"\x05\xa1\x00\x61a", "UPLOAD_STATS uptime is not an integer"),
        (b"\x06" + bytes(8), "UPLOAD_DATA without data"),
        (b"\x07\xa1\x01\x41\x00", "UPLOAD_SHELL needs a 16-byte message id"),
        (b"\x07\xa2\x01\x50" + bytes(16) + b"\x00\xa0", "UPLOAD_SHELL results are not an array"),
        (b"\x07\xa2\x01\x50" + bytes(16) + b"\x00\x81\x01", "UPLOAD_SHELL result is not a map"),
        (b"\x07\xa2\x01\x50" + bytes(16) + b"\x00\x81\xa0", "UPLOAD_SHELL result needs a command"),
        (b"\x08\xa1\x00\x63app", "UPLOAD_FIRMWARE needs a target and a type"),
        (b"\x08\xa2\x00\x63app\x01\x01", "UPLOAD_FIRMWARE type has the wrong type"),
        (b"\x08\xa3\x00\x63app\x01\x61x\x02\x41\x00", "UPLOAD_FIRMWARE job id is not 16 bytes"),
    ],
)
def test_invalid_uplinks_are_refused_with_a_reason(message: bytes, reason: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_uplink(message)
    assert caught.value.reason.startswith(reason)


def test_cbor_tags_are_reduced_to_their_content() -> None:
    regex = cbor2.dumps(cbor2.CBORTag(35, "(a+)+$"))  # cbor2 alone would compile it
    session = parse_uplink(b"\x00\xa1\x01" + regex)
    assert isinstance(session, CreateSession)
    assert session.attributes == {1: "(a+)+$"}


@given(st.binary(max_size=300))
def test_parse_uplink_raises_only_message_errors(message: bytes) -> None:
    with contextlib.suppress(MessageError):
        parse_uplink(message)


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.integers(-2, 20) | st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.sampled_from(range(9)), st.binary(max_size=9), cbor_values)
def test_parse_uplink_raises_only_message_errors_on_cbor(
    kind: int, prefix: bytes, value: object
) -> None:
    with contextlib.suppress(MessageError):
        parse_uplink(bytes([kind]) + prefix + cbor2.dumps(value))


# -- downlinks -------------------------------------------------------------------------


def test_set_session_of_the_boot_trace(trace_messages: dict[str, bytes]) -> None:
    message = encode_set_session(
        0x64BA538F,
        0x64BA538E,
        decoder_hash=None,
        encoder_hash=None,
        config_hash=None,
        device_id="0188d85c-8962-786f-c985-a67fee7bb144",
        device_name="test-device-s0-985",
    )
    assert message == trace_messages["set_session"]


def test_set_session_of_the_firmware_test() -> None:
    message = encode_set_session(
        1688114008,
        1688114009,
        decoder_hash=0x1FBE3AC758C6F88C,
        encoder_hash=0x46C3BA674E0F604F,
        config_hash=None,
        device_id="01890b66-c8f5-70ea-9f43-afe24edf9f55",
        device_name="karel-dev",
    )
    assert message.hex() == (
        "80a6001a649e9358011b1fbe3ac758c6f88c021b46c3ba674e0f604f041a649e935905782430"
        "313839306236362d633866352d373065612d396634332d61666532346564663966353506696b"
        "6172656c2d646576"
    )


def test_set_session_sends_only_keys_0_to_6_in_definite_length() -> None:
    message = encode_set_session(
        1, 2, decoder_hash=3, encoder_hash=4, config_hash=5, device_id="d", device_name="n"
    )
    assert message[1] == 0xA7  # a definite map of 7 pairs
    assert list(cbor2.loads(message[1:])) == [0, 1, 2, 3, 4, 5, 6]
    assert cbor2.loads(encode_set_session(9, 0)[1:]) == {0: 9, 4: 0}


def test_set_session_truncates_id_and_name_to_the_firmware_buffers() -> None:
    message = encode_set_session(1, 0, device_id="x" * 50, device_name="é" * 20)
    value = cbor2.loads(message[1:])
    assert value[5] == "x" * 36
    assert value[6] == "é" * 16  # 32 bytes of UTF-8, never half a character


@pytest.mark.parametrize("session_id", [0, -1, 1 << 32])
def test_set_session_needs_a_non_zero_uint32_id(session_id: int) -> None:
    with pytest.raises(ValueError, match="non-zero uint32"):
        encode_set_session(session_id, 0)


def test_set_session_refuses_a_hash_out_of_range() -> None:
    with pytest.raises(ValueError, match="uint64"):
        encode_set_session(1, 0, config_hash=1 << 64)


def test_set_timestamp_has_nine_bytes() -> None:
    assert encode_set_timestamp(1686984377).hex() == "8100000000648d56b9"
    assert len(encode_set_timestamp(-1)) == 9


def test_download_config_of_the_boot_trace(trace_messages: dict[str, bytes]) -> None:
    assert encode_download_config(CONFIG_LINES) == trace_messages["download_config"]
    with pytest.raises(ValueError, match="at least one line"):
        encode_download_config([])
    with pytest.raises(ValueError, match="sequence of text"):
        encode_download_config("app config show")


def test_download_shell_of_the_boot_trace(trace_messages: dict[str, bytes]) -> None:
    commands = ["app config show", "app config interval-sample"]
    assert encode_download_shell(commands, SHELL_ID) == trace_messages["download_shell"]
    with pytest.raises(ValueError, match="16 bytes"):
        encode_download_shell(commands, b"short")


def test_download_data_example(vectors: dict[str, Any]) -> None:
    example = vectors["downlink_data_example"]
    message = encode_download_data(0xC76A16DD617F713B, bytes.fromhex("a200010200"))
    assert message.hex() == example["message"]
    with pytest.raises(ValueError, match="needs data"):
        encode_download_data(1, b"")
