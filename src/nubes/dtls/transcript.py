"""Follow a PSK handshake from outside the DTLS library and derive its keys.

Two uses, one mechanism:

1. **Key rotation.** A device may hold either of two valid PSKs. The
   library asks for the key once, while it parses the ClientKeyExchange,
   and the only proof of which key the client used is its Finished record,
   encrypted under keys derived from that PSK. The client sends both in
   one flight, so before handing the flight to the library we derive the
   client write key from each candidate PSK and try to open the Finished
   record; the candidate that opens it is the one the library is given.
   The first handshake succeeds with either key: no failed attempt, no
   second round trip.
2. **Record layer hand-off.** When the handshake is over we derive the
   traffic keys the same way, check them against both Finished records
   (the client's and ours), and only then drop the library's context.

What is hashed (RFC 5246 7.4.9, RFC 6347 4.2.6, RFC 7627 4): every
handshake message from the ClientHello that carried the valid cookie up to
and including the ClientKeyExchange, each with its 12-byte DTLS header
rewritten as unfragmented. The HelloVerifyRequest exchange is not part of
it. Only unfragmented messages are followed (PSK handshake messages are far
below any MTU); anything else makes `keys()` return None and the caller
falls back (see `mbedtls_engine`).
"""

from __future__ import annotations

import hashlib

from nubes.dtls import wire
from nubes.dtls.crypto import SUITES_BY_CODE, Suite, TrafficKeys, master_secret, traffic_keys
from nubes.dtls.records import open_record

_CLIENT_MESSAGES = frozenset({wire.CLIENT_HELLO, wire.CLIENT_KEY_EXCHANGE})
_SERVER_MESSAGES = frozenset({wire.SERVER_HELLO, wire.SERVER_KEY_EXCHANGE, wire.SERVER_HELLO_DONE})
_HASHED_ORDER = (
    wire.CLIENT_HELLO,
    wire.SERVER_HELLO,
    wire.SERVER_KEY_EXCHANGE,
    wire.SERVER_HELLO_DONE,
    wire.CLIENT_KEY_EXCHANGE,
)


class Transcript:
    """The handshake messages and Finished records of one handshake."""

    __slots__ = ("_messages", "client_finished", "server_finished")

    def __init__(self) -> None:
        self._messages: dict[int, wire.HandshakeMessage] = {}
        self.client_finished: wire.Record | None = None
        self.server_finished: wire.Record | None = None

    def observe_client(self, records: list[wire.Record]) -> None:
        for record in records:
            if record.content_type != wire.HANDSHAKE:
                continue
            if record.epoch == 0:
                self._keep(record, _CLIENT_MESSAGES)
            elif record.epoch == 1:
                self.client_finished = record

    def observe_server(self, records: list[wire.Record]) -> None:
        for record in records:
            if record.content_type != wire.HANDSHAKE:
                continue
            if record.epoch == 0:
                self._keep(record, _SERVER_MESSAGES)
            elif record.epoch == 1:
                self.server_finished = record

    def identity(self) -> bytes | None:
        """The PSK identity of the ClientKeyExchange, once it has been seen."""
        message = self._messages.get(wire.CLIENT_KEY_EXCHANGE)
        if message is None:
            return None
        return wire.psk_identity(message.body)

    def suite(self) -> Suite | None:
        """The suite our ServerHello chose, if it is one we can run ourselves."""
        message = self._messages.get(wire.SERVER_HELLO)
        code = None if message is None else wire.server_hello_suite(message.body)
        return None if code is None else SUITES_BY_CODE.get(code)

    def keys(self, psk: bytes, suite: Suite) -> TrafficKeys | None:
        """The traffic keys this handshake derives from `psk`, if it can tell."""
        hashed = [self._messages.get(t) for t in _HASHED_ORDER]
        hello, server_hello, _, done, exchange = hashed
        if hello is None or server_hello is None or done is None or exchange is None:
            return None
        client_random = wire.hello_random(hello.body)
        server_random = wire.hello_random(server_hello.body)
        extensions = wire.server_hello_extensions(server_hello.body)
        if client_random is None or server_random is None or extensions is None:
            return None
        session_hash = None
        if wire.EXT_EXTENDED_MASTER_SECRET in extensions:
            digest = hashlib.sha256()
            for message in hashed:
                if message is not None:
                    digest.update(message.transcript_bytes())
            session_hash = digest.digest()
        master = master_secret(psk, client_random, server_random, session_hash)
        return traffic_keys(master, client_random, server_random, suite)

    def opens_client_finished(self, keys: TrafficKeys, suite: Suite) -> bool:
        record = self.client_finished
        if record is None:
            return False
        plaintext = open_record(suite, keys.client_key, keys.client_iv, record)
        return plaintext is not None and plaintext[:1] == bytes([wire.FINISHED])

    def opens_server_finished(self, keys: TrafficKeys, suite: Suite) -> bool:
        record = self.server_finished
        if record is None:
            return False
        plaintext = open_record(suite, keys.server_key, keys.server_iv, record)
        return plaintext is not None and plaintext[:1] == bytes([wire.FINISHED])

    def _keep(self, record: wire.Record, wanted: frozenset[int]) -> None:
        for message in wire.parse_handshake(record.fragment):
            if message.msg_type in wanted and message.complete:
                self._messages[message.msg_type] = message


def matching_key(transcript: Transcript, psks: list[bytes]) -> int | None:
    """The index of the PSK whose keys open the client's Finished record, if any."""
    suite = transcript.suite()
    if suite is None:
        return None
    for index, psk in enumerate(psks):
        keys = transcript.keys(psk, suite)
        if keys is not None and transcript.opens_client_finished(keys, suite):
            return index
    return None
