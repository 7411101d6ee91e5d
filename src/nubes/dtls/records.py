"""The DTLS 1.2 record layer of an established association, in Python.

Once the handshake is over the DTLS library is dropped and this small object
takes over: about 2 KB per association instead of the 40-100 KB of an Mbed
TLS context (see `crypto` for why). It does what RFC 6347 asks of a
receiver and no more:

- only epoch-1 records are opened; anything else is silently dropped;
- a 64-record sliding window rejects replays (4.1.2.6), checked before and
  updated only after the record authenticates;
- nonce = fixed IV (4 B) + explicit nonce (8 B, carried in the record);
  additional data = epoch + sequence + type + version + plaintext length
  (RFC 5246 6.2.3.3, RFC 6655 for CCM). Our explicit nonce is the 8-byte
  epoch + sequence of the record, as Mbed TLS and OpenSSL do, so it never
  repeats under one key.

The price is CPU: ~34 us per record in and out (Mbed TLS: ~11 us), mostly
the creation of one-use Mbed TLS cipher objects. `MbedtlsEngine(...,
python_records=False)` trades the memory back for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from nubes.dtls import wire
from nubes.dtls.crypto import EXPLICIT_NONCE_SIZE, Suite, TrafficKeys, open_sealed, seal

REPLAY_WINDOW: Final = 64
MAX_PLAINTEXT: Final = 16_384
MAX_SEQUENCE: Final = (1 << 48) - 1


@dataclass(frozen=True, slots=True)
class Opened:
    """An authenticated record: its content type and plaintext."""

    content_type: int
    plaintext: bytes


def open_record(suite: Suite, key: bytes, fixed_iv: bytes, record: wire.Record) -> bytes | None:
    """The plaintext of a record sealed with `key`, or None when it does not verify."""
    fragment = record.fragment
    if len(fragment) < EXPLICIT_NONCE_SIZE + suite.tag_size:
        return None
    sealed = fragment[EXPLICIT_NONCE_SIZE:]
    plain_size = len(sealed) - suite.tag_size
    nonce = fixed_iv + fragment[:EXPLICIT_NONCE_SIZE]
    aad = record.header[3:11] + record.header[:3] + plain_size.to_bytes(2, "big")
    return open_sealed(suite, key, nonce, aad, sealed)


class RecordLayer:
    """Seal and open the records of one association (epoch 1, server side)."""

    __slots__ = ("_keys", "_suite", "_top", "_window", "epoch", "next_sequence")

    def __init__(self, suite: Suite, keys: TrafficKeys, epoch: int, next_sequence: int) -> None:
        self._suite = suite
        self._keys = keys
        self.epoch = epoch
        self.next_sequence = next_sequence
        self._top = -1  # highest sequence number seen from the client
        self._window = 0  # bit i set: sequence top - i was seen

    def open(self, record: wire.Record) -> Opened | None:
        """The plaintext of an authentic, fresh epoch-1 record, else None."""
        if record.epoch != self.epoch or record.version != wire.DTLS_1_2:
            return None
        if self._seen(record.sequence):
            return None
        plaintext = open_record(self._suite, self._keys.client_key, self._keys.client_iv, record)
        if plaintext is None:
            return None
        self._mark(record.sequence)
        return Opened(record.content_type, plaintext)

    def mark_seen(self, sequence: int) -> None:
        """Record a sequence number consumed elsewhere (the client's Finished)."""
        self._mark(sequence)

    def seal(self, content_type: int, plaintext: bytes) -> bytes:
        """One record carrying `plaintext`, ready to send."""
        if len(plaintext) > MAX_PLAINTEXT:
            raise ValueError("record too large")
        sequence = self.next_sequence
        if sequence > MAX_SEQUENCE:
            raise ValueError("sequence numbers exhausted")
        self.next_sequence += 1
        explicit = self.epoch.to_bytes(2, "big") + sequence.to_bytes(6, "big")
        aad = explicit + bytes([content_type]) + wire.DTLS_1_2 + len(plaintext).to_bytes(2, "big")
        sealed = seal(
            self._suite, self._keys.server_key, self._keys.server_iv + explicit, aad, plaintext
        )
        body = explicit + sealed
        return wire.record_header(content_type, self.epoch, sequence, len(body)) + body

    def _seen(self, sequence: int) -> bool:
        if sequence > self._top:
            return False
        offset = self._top - sequence
        return offset >= REPLAY_WINDOW or bool(self._window >> offset & 1)

    def _mark(self, sequence: int) -> None:
        if sequence > self._top:
            shift = sequence - self._top
            self._window = (self._window << shift | 1) & ((1 << REPLAY_WINDOW) - 1)
            self._top = sequence
        else:
            self._window |= 1 << (self._top - sequence)
