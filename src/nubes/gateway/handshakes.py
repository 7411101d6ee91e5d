"""DTLS handshakes and associations in the communication log.

The DTLS server reports events (`nubes.dtls`): a handshake started,
established (suite, identity, which key), failed and why, an association
closed and why. They go to the log of the device they name, with envelope
`dtls` and the device's address; identities that are no device are only
counted.

A device starts its FLAP session (CREATE_SESSION) right after its
handshake, and that session's log should begin with the handshake that
opened it: so the rows of an established handshake are held until the
gateway accepts the device's next CREATE_SESSION and go into that session.
A device that goes on with its session instead (a new handshake after its
address changed, or after the server forgot it) gets them in its current
session after `HOLD_SECONDS`. Failures and closes are written at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from nubes import dtls
from nubes.gateway.directory import DeviceInfo, Directory
from nubes.gateway.publisher import Publisher
from nubes.pipeline import records

log = logging.getLogger(__name__)

# A handshake's log rows wait this long for the session it opens ...
HOLD_SECONDS = 5.0
# ... and at most this many handshakes wait at once (the oldest go first).
MAX_HELD = 10_000


class HandshakeLog:
    """Writes DTLS events to the devices' logs, a handshake into the session it opens."""

    def __init__(self, directory: Directory, publisher: Publisher, counters: Counter[str]) -> None:
        self._directory = directory
        self._publisher = publisher
        self._counters = counters
        self._held: dict[int, list[records.Record]] = {}  # serial -> rows, oldest first

    def event(self, event: dtls.DtlsEvent, started: float | None) -> None:
        """One event; `started` is when its handshake began (for an end of one)."""
        outcome, address, serial, detail = entry(event)
        self._counters[counter_key(event, outcome)] += 1
        info = None if serial is None else self._directory.get(serial)
        if info is None:
            return  # unknown identities are only counted
        remote = (str(address[0]), int(address[1]))
        rows = [] if started is None else [log_row(info, remote, started, "dtls_start", "")]
        rows.append(log_row(info, remote, time.time(), outcome, detail))
        if outcome == "dtls_established":
            self._hold(info.serial, rows)
            return
        for row in rows:
            self._publisher.add(row)
        if outcome == "dtls_failed":
            log.info(
                "device %s: DTLS handshake failed: %s", serial, detail, extra={"serial": serial}
            )

    def opened_session(self, serial: int, session_id: int) -> list[records.Record]:
        """The held rows of the device's handshake, now in the session it opened."""
        held = self._held.pop(serial, [])
        for row in held:
            row["session_id"] = session_id
        return held

    def _hold(self, serial: int, rows: list[records.Record]) -> None:
        self._flush(serial)  # an earlier handshake that opened no session
        self._held[serial] = rows
        if len(self._held) > MAX_HELD:
            self._flush(next(iter(self._held)))
        asyncio.get_running_loop().call_later(HOLD_SECONDS, self._flush, serial, rows)

    def _flush(self, serial: int, rows: list[records.Record] | None = None) -> None:
        """Publishes a held handshake in the device's current session."""
        held = self._held.get(serial)
        if held is None or (rows is not None and held is not rows):
            return  # in a new session already, or replaced by a newer handshake
        del self._held[serial]
        info = self._directory.get(serial)
        for row in held:
            row["session_id"] = None if info is None else info.session_id
            self._publisher.add(row)


def entry(event: dtls.DtlsEvent) -> tuple[str, dtls.Address, int | None, str]:
    """(outcome, address, serial, detail) of a DTLS event for the communication log."""
    if isinstance(event, dtls.Established):
        a = event.association
        key = "" if a.key_index == 0 else ", with the replaced PSK"
        return "dtls_established", a.address, a.serial, f"{a.suite} as {a.identity}{key}"
    if isinstance(event, dtls.HandshakeFailed):
        serial = None if event.identity is None else dtls.serial_of(event.identity)
        detail = event.reason + (f": {event.detail}" if event.detail else "")
        return "dtls_failed", event.address, serial, detail
    if isinstance(event, dtls.Closed):
        a = event.association
        return "dtls_closed", a.address, a.serial, event.reason
    return "dtls_start", event.address, None, ""


def counter_key(event: dtls.DtlsEvent, outcome: str) -> str:
    """`dtls:<outcome>`, with the fixed reason of a failure or an end (for metrics)."""
    if isinstance(event, dtls.HandshakeFailed | dtls.Closed):
        return f"dtls:{outcome}:{event.reason}"
    return f"dtls:{outcome}"


def log_row(
    info: DeviceInfo, remote: tuple[str, int], at: float, outcome: str, detail: str
) -> records.Record:
    return records.log_record(
        session_id=info.session_id,
        device_id=info.id,
        at=at,
        direction="in",
        envelope="dtls",
        remote=remote,
        flags=None,
        seq=None,
        size=0,
        outcome=outcome,
        detail=detail,
    )
