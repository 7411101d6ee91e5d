"""DTLS 1.2 wire format: protocol numbers and parsers, no protocol logic.

The server looks at datagrams before the DTLS library does, for three
reasons: to recognise a ClientHello from an address that already has state
(a new handshake, not a record for the old session), to follow the
handshake transcript so that a device holding two keys can be tried with
both (see `transcript`), and to run the record layer itself once the
handshake is over (see `records`). Everything here is a pure function of
bytes, and a malformed input gives `None` or an empty list, never an
exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

# Record content types (RFC 6347 4.1, RFC 9146 for tls12_cid).
CHANGE_CIPHER_SPEC: Final = 20
ALERT: Final = 21
HANDSHAKE: Final = 22
APPLICATION_DATA: Final = 23
TLS12_CID: Final = 25

# Handshake message types (RFC 5246 7.4, RFC 6347 4.3.2).
CLIENT_HELLO: Final = 1
SERVER_HELLO: Final = 2
HELLO_VERIFY_REQUEST: Final = 3
SERVER_KEY_EXCHANGE: Final = 12
SERVER_HELLO_DONE: Final = 14
CLIENT_KEY_EXCHANGE: Final = 16
FINISHED: Final = 20

# Extensions the server cares about.
EXT_EXTENDED_MASTER_SECRET: Final = 23
EXT_CONNECTION_ID: Final = 54
EXT_CONNECTION_ID_DRAFT: Final = 254

# Alerts (RFC 5246 7.2).
ALERT_WARNING: Final = 1
ALERT_FATAL: Final = 2
CLOSE_NOTIFY: Final = 0

DTLS_1_2: Final = b"\xfe\xfd"
RECORD_HEADER: Final = 13
HANDSHAKE_HEADER: Final = 12
RANDOM_SIZE: Final = 32


@dataclass(frozen=True, slots=True)
class Record:
    """One DTLSPlaintext/DTLSCiphertext record as found in a datagram."""

    content_type: int
    version: bytes
    epoch: int
    sequence: int
    header: bytes
    fragment: bytes


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    """One handshake message (or fragment of one) inside a record."""

    msg_type: int
    length: int
    message_seq: int
    fragment_offset: int
    fragment_length: int
    body: bytes

    @property
    def complete(self) -> bool:
        return self.fragment_offset == 0 and self.fragment_length == self.length

    def transcript_bytes(self) -> bytes:
        """The message as the handshake hash sees it: unfragmented header + body."""
        length = self.length.to_bytes(3, "big")
        return (
            bytes([self.msg_type])
            + length
            + self.message_seq.to_bytes(2, "big")
            + b"\0\0\0"
            + length
            + self.body
        )


def parse_records(datagram: bytes) -> list[Record]:
    """The whole records of a datagram; a truncated tail is ignored."""
    records: list[Record] = []
    offset = 0
    while offset + RECORD_HEADER <= len(datagram):
        header = datagram[offset : offset + RECORD_HEADER]
        length = int.from_bytes(header[11:13], "big")
        end = offset + RECORD_HEADER + length
        if end > len(datagram):
            break
        records.append(
            Record(
                content_type=header[0],
                version=header[1:3],
                epoch=int.from_bytes(header[3:5], "big"),
                sequence=int.from_bytes(header[5:11], "big"),
                header=header,
                fragment=datagram[offset + RECORD_HEADER : end],
            )
        )
        offset = end
    return records


def parse_handshake(fragment: bytes) -> list[HandshakeMessage]:
    """The handshake messages of a plaintext record; stops at the first malformed one."""
    return list(_handshake_messages(fragment))


def _handshake_messages(fragment: bytes) -> Iterator[HandshakeMessage]:
    offset = 0
    while offset + HANDSHAKE_HEADER <= len(fragment):
        head = fragment[offset : offset + HANDSHAKE_HEADER]
        fragment_length = int.from_bytes(head[9:12], "big")
        end = offset + HANDSHAKE_HEADER + fragment_length
        if end > len(fragment):
            return
        yield HandshakeMessage(
            msg_type=head[0],
            length=int.from_bytes(head[1:4], "big"),
            message_seq=int.from_bytes(head[4:6], "big"),
            fragment_offset=int.from_bytes(head[6:9], "big"),
            fragment_length=fragment_length,
            body=fragment[offset + HANDSHAKE_HEADER : end],
        )
        offset = end


def client_hello_random(datagram: bytes) -> bytes | None:
    """The client random if the datagram starts with an epoch-0 ClientHello, else None.

    Only the first record is looked at (a ClientHello opens its flight) and
    the random is taken from the fragment at offset 0, so this also works for
    a ClientHello split over several records.
    """
    if len(datagram) < RECORD_HEADER or datagram[0] != HANDSHAKE or datagram[3:5] != b"\0\0":
        return None
    records = parse_records(datagram[: RECORD_HEADER + int.from_bytes(datagram[11:13], "big")])
    if not records:
        return None
    messages = parse_handshake(records[0].fragment)
    if not messages or messages[0].msg_type != CLIENT_HELLO:
        return None
    first = messages[0]
    if first.fragment_offset != 0 or len(first.body) < 2 + RANDOM_SIZE:
        return None
    return first.body[2 : 2 + RANDOM_SIZE]


def hello_random(body: bytes) -> bytes | None:
    """The random of a ClientHello or ServerHello body (after the 2-byte version)."""
    if len(body) < 2 + RANDOM_SIZE:
        return None
    return body[2 : 2 + RANDOM_SIZE]


def server_hello_suite(body: bytes) -> int | None:
    """The cipher suite a ServerHello body chose."""
    offset = 2 + RANDOM_SIZE
    if len(body) < offset + 1:
        return None
    offset += 1 + body[offset]  # session id
    if len(body) < offset + 2:
        return None
    return int.from_bytes(body[offset : offset + 2], "big")


def server_hello_extensions(body: bytes) -> set[int] | None:
    """The extension types of a ServerHello body, or None when it does not parse."""
    offset = 2 + RANDOM_SIZE
    if len(body) < offset + 1:
        return None
    offset += 1 + body[offset]  # session id
    offset += 2 + 1  # cipher suite, compression method
    if offset == len(body):
        return set()
    if offset + 2 > len(body):
        return None
    end = offset + 2 + int.from_bytes(body[offset : offset + 2], "big")
    if end != len(body):
        return None
    return _extension_types(body[offset + 2 : end])


def _extension_types(block: bytes) -> set[int] | None:
    types: set[int] = set()
    offset = 0
    while offset + 4 <= len(block):
        types.add(int.from_bytes(block[offset : offset + 2], "big"))
        offset += 4 + int.from_bytes(block[offset + 2 : offset + 4], "big")
    return types if offset == len(block) else None


def psk_identity(client_key_exchange: bytes) -> bytes | None:
    """The identity of a plain-PSK ClientKeyExchange body (RFC 4279 2)."""
    if len(client_key_exchange) < 2:
        return None
    length = int.from_bytes(client_key_exchange[:2], "big")
    if len(client_key_exchange) != 2 + length:
        return None
    return client_key_exchange[2:]


def record_header(content_type: int, epoch: int, sequence: int, length: int) -> bytes:
    """A DTLS 1.2 record header."""
    return (
        bytes([content_type])
        + DTLS_1_2
        + epoch.to_bytes(2, "big")
        + sequence.to_bytes(6, "big")
        + length.to_bytes(2, "big")
    )
