"""The FLAP packet: a 2-byte header (four flags, 12-bit sequence) and one fragment.

The header is one big-endian uint16: bit 15 F (first fragment), bit 14 L (last
fragment), bit 13 A (ack, never with data), bit 12 P (poll), bits 11..0 the
sequence number. The flags are kept as the top nibble (`F = 0x8` ... `P = 0x1`)
because that is how the firmware stores them and how logs print them
(`[FLxx]`, `[xxAP]`).

One counter numbers both directions; 0 is reserved for "start over", so the
counter wraps from 4095 to 1 (`next_seq`). Decoding is the first thing done
with bytes from the network, so it is kept to a few integer operations.
"""

from __future__ import annotations

from dataclasses import dataclass

from nubes.errors import PacketError

F = 0x8
L = 0x4
A = 0x2
P = 0x1

MAX_SEQ = 4095
HEADER_SIZE = 2


def next_seq(seq: int, step: int = 1) -> int:
    """The sequence number `step` places after `seq`: 4095 is followed by 1, never 0."""
    return (seq - 1 + step) % MAX_SEQ + 1


def flag_text(flags: int) -> str:
    """The log notation of a flag nibble, e.g. `[FLxx]` or `[xxAP]`."""
    return _FLAG_TEXT[flags & 0xF]


def _render_flags(flags: int) -> str:
    letters = (c if flags & bit else "x" for c, bit in (("F", F), ("L", L), ("A", A), ("P", P)))
    return "[" + "".join(letters) + "]"


_FLAG_TEXT = tuple(_render_flags(flags) for flags in range(16))


@dataclass(frozen=True, slots=True)
class Packet:
    """One FLAP packet; `flags` is the nibble of F/L/A/P, `data` one fragment."""

    flags: int
    seq: int
    data: bytes = b""

    def encode(self) -> bytes:
        if not (0 <= self.flags <= 0xF and 0 <= self.seq <= MAX_SEQ):
            raise ValueError(f"flags {self.flags} or sequence {self.seq} out of range")
        return ((self.flags << 12) | self.seq).to_bytes(2, "big") + self.data

    @staticmethod
    def decode(raw: bytes) -> Packet:
        """The packet of `raw`; PacketError when it is too short or an ack carries data."""
        if len(raw) < HEADER_SIZE:
            raise PacketError("too short")
        header = (raw[0] << 8) | raw[1]
        flags = header >> 12
        if flags & A and len(raw) > HEADER_SIZE:
            raise PacketError("ack with data")
        return Packet(flags, header & 0xFFF, raw[HEADER_SIZE:])

    @property
    def flag_text(self) -> str:
        return _FLAG_TEXT[self.flags & 0xF]

    def __str__(self) -> str:
        return f"{self.seq} {_FLAG_TEXT[self.flags & 0xF]} len {len(self.data)}"


RESET = Packet(0, 0)
"""The cloud's request to start over: header 0x0000, no data."""
