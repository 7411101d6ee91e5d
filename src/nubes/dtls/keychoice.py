"""Which of a device's valid keys one handshake gives the DTLS library.

The library asks once, while it parses the ClientKeyExchange; the answer
must be right the first time, because a wrong key is only discovered at
the client's Finished and ends the handshake. With one valid key there is
nothing to choose. With two (a rotation in progress), the engine holds the
client's flight until its encrypted Finished record is in hand, and
`must_hold` then picks the key whose derived client key opens it
(`transcript.matching_key`). When that cannot be decided, `KeyPreference`
chooses, and learns from a `bad_key` failure.
"""

from __future__ import annotations

from nubes.dtls.keys import KeyLookup, KeyPreference, serial_of, valid_keys
from nubes.dtls.transcript import Transcript, matching_key


class KeyChoice:
    """The key decision of one handshake; `index` and `psk` once made."""

    __slots__ = (
        "_choice",
        "_decided",
        "_keys",
        "_lookup",
        "_preference",
        "index",
        "psk",
        "unknown",
    )

    def __init__(self, lookup: KeyLookup, preference: KeyPreference) -> None:
        self._lookup = lookup
        self._preference = preference
        self._keys: tuple[str, list[bytes]] | None = None
        self._choice: int | None = None
        self._decided = False
        self.unknown = False
        self.index: int | None = None
        self.psk: bytes | None = None

    def must_hold(self, transcript: Transcript) -> bool:
        """Whether the client's flight must wait for its Finished record."""
        if self._decided:
            return False
        raw_identity = transcript.identity()
        if raw_identity is None:
            return False  # not at the ClientKeyExchange yet
        try:
            keys = self.keys_of(raw_identity.decode())
        except UnicodeDecodeError:
            keys = []
        if len(keys) > 1 and transcript.client_finished is None:
            return True
        self._decided = True
        if len(keys) > 1:
            self._choice = matching_key(transcript, keys)
        return False

    def stop_waiting(self) -> None:
        """The Finished did not come in time: the preference decides."""
        self._decided = True

    def psk_for(self, identity: str) -> bytes:
        """The key for the library (KeyError: unknown device or no valid key)."""
        serial = serial_of(identity)
        keys = self.keys_of(identity)
        if serial is None or not keys:
            self.unknown = True
            raise KeyError(identity)
        index = self._choice
        if index is None:
            index = self._preference.first(serial, len(keys))
        self.index, self.psk = index, keys[index]
        return self.psk

    def keys_of(self, identity: str) -> list[bytes]:
        """The valid keys of the device, looked up once per handshake."""
        if self._keys is None or self._keys[0] != identity:
            serial = serial_of(identity)
            keys = [] if serial is None else valid_keys(self._lookup, serial)
            self._keys = (identity, keys)
        return self._keys[1]

    def failed(self, identity: str) -> None:
        """The key did not verify: the next handshake of the device tries another."""
        serial = serial_of(identity)
        if serial is not None and self._keys is not None and self.index is not None:
            self._preference.failed(serial, self.index, len(self._keys[1]))

    def succeeded(self, identity: str) -> None:
        serial = serial_of(identity)
        if serial is not None and self.index is not None:
            self._preference.succeeded(serial, self.index)
