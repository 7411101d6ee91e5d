"""Identifiers.

Message ids are UUID version 7 (RFC 9562): time-ordered, so that the newest
rows of a table sit together in its primary-key index and an id alone sorts
like its creation time.
"""

from __future__ import annotations

import random
import time
import uuid

# Ids need to be unique, not unguessable: the Mersenne twister costs no
# system call (os.urandom does), and the gateway makes one id per message.
_random = random.Random()


def uuid7(at: float | None = None) -> uuid.UUID:
    """A UUIDv7 for the given Unix time (seconds; now when omitted)."""
    millis = int((time.time() if at is None else at) * 1000) & 0xFFFF_FFFF_FFFF
    rand = _random.getrandbits(80)
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)
