"""Device identities and their pre-shared keys, as the handshake needs them.

The caller provides a `KeyLookup`: serial number -> the device's currently
valid PSKs, newest first (empty: unknown device). It is called
synchronously inside a handshake, so it must answer from memory; the
gateway keeps that memory fresh from the database.

`KeyPreference` is the fallback of key rotation, used only when the server
cannot tell from the client's Finished record which key it used (see
`transcript`): after a `bad_key` failure with key i, the next handshake of
that device is given key i+1. It holds one small int per device that failed
recently, at most `capacity` of them, oldest forgotten first.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final, TypeAlias

log = logging.getLogger(__name__)

KeyLookup: TypeAlias = Callable[[int], Sequence[bytes]]

IDENTITY_PREFIX: Final = "hsn:"
MIN_PSK: Final = 16
MAX_PSK: Final = 32
_SERIAL = re.compile(r"[0-9]{1,20}")


def identity_of(serial: int) -> str:
    """The PSK identity of a device: `hsn:<serial in decimal>`."""
    return f"{IDENTITY_PREFIX}{serial}"


def serial_of(identity: str) -> int | None:
    """The serial number in an identity, or None if it is not `hsn:<decimal>`."""
    if not identity.startswith(IDENTITY_PREFIX):
        return None
    digits = identity[len(IDENTITY_PREFIX) :]
    if not _SERIAL.fullmatch(digits):
        return None
    return int(digits)


def valid_keys(lookup: KeyLookup, serial: int) -> list[bytes]:
    """The device's keys of an acceptable length (16..32 bytes), newest first.

    A lookup that raises is treated as "unknown device" and logged: the
    handshake must not crash on a broken cache.
    """
    try:
        keys = list(lookup(serial))
    except Exception:
        log.exception("PSK lookup failed", extra={"serial": serial})
        return []
    good = [bytes(key) for key in keys if MIN_PSK <= len(key) <= MAX_PSK]
    if len(good) != len(keys):
        log.warning("PSK of a bad length ignored", extra={"serial": serial})
    return good


class KeyPreference:
    """Which key to try first for a device whose Finished could not be checked."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._next: OrderedDict[int, int] = OrderedDict()

    def first(self, serial: int, count: int) -> int:
        return self._next.get(serial, 0) % count if count else 0

    def failed(self, serial: int, index: int, count: int) -> None:
        """Key `index` did not verify: the next handshake tries the next key."""
        if count > 1:
            self._remember(serial, (index + 1) % count)

    def succeeded(self, serial: int, index: int) -> None:
        """Key `index` verified: try it first next time too."""
        if index == 0:
            self._next.pop(serial, None)
        else:
            self._remember(serial, index)

    def _remember(self, serial: int, index: int) -> None:
        self._next[serial] = index
        self._next.move_to_end(serial)
        while len(self._next) > self._capacity:
            self._next.popitem(last=False)

    def __len__(self) -> int:
        return len(self._next)
