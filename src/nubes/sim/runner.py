"""`nubes sim`: runs K simulated devices at R data messages/s for S seconds.

Devices start spread over the first interval so that they do not all wake
in the same millisecond (unless that is the point: use a high rate). With
`--add`, devices missing from the database are added first with their
claim tokens and PSKs, so a fresh server can be tried with one command.
With `--dtls` the devices speak the DTLS envelope, each from its own socket
(`nubes.sim.dtls`); otherwise the MAC envelope, all from one socket. At the
end a summary is printed: sessions, acked data, downlinks, timeouts, ack
latency, and with `--dtls` the handshakes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import time
from importlib import resources
from pathlib import Path

from nubes.config import Settings
from nubes.errors import StoreError
from nubes.services import devices
from nubes.sim.device import Network, Profile, SharedSocket, SimDevice, Stats
from nubes.sim.dtls import DtlsNetwork
from nubes.store.database import Database

PSK_SIZES = range(16, 33)
DEFAULT_CONFIG = [
    "app config interval-sample 60",
    "app config interval-report 900",
]


def claim_token_for(serial: int) -> bytes:
    """The simulator's claim token of a serial number, when none is given."""
    return hashlib.sha256(f"nubes-sim-{serial}".encode()).digest()[:16]


def psk_for(serial: int) -> bytes:
    """The simulator's DTLS PSK of a serial number, when none is given."""
    return hashlib.sha256(f"nubes-sim-psk-{serial}".encode()).digest()[:16]


def _codec_text(path: str | None, default: str) -> str:
    if path:
        return Path(path).read_text()
    return resources.files("nubes.sim").joinpath("codecs", default).read_text()


async def run_simulation(args: argparse.Namespace, settings: Settings) -> int:
    token = bytes.fromhex(args.claim_token) if args.claim_token else None
    psk = devices.parse_hex_secret(args.psk, name="PSK", sizes=PSK_SIZES) if args.psk else None
    serials = [args.serial + index for index in range(args.devices)]
    if args.add and await _add_devices(settings, serials, token, psk, args.group):
        # A running server learns of new devices within its refresh interval.
        await asyncio.sleep(settings.device_refresh_seconds + 0.2)
    stats = Stats(dtls=args.dtls)
    decoder = _codec_text(args.decoder, "demo.decoder.yaml")
    encoder = _codec_text(args.encoder, "demo.encoder.yaml")
    interval = args.devices / args.rate if args.rate > 0 else args.duration
    stop_at = time.monotonic() + args.duration
    network, shared = await _network(args, settings)
    sims = [
        SimDevice(
            Profile(
                serial,
                token or claim_token_for(serial),
                decoder,
                encoder,
                list(args.config or DEFAULT_CONFIG),
                args.timeout,
                psk or psk_for(serial),
            ),
            network,
            stats,
            seed=serial,
        )
        for serial in serials
    ]
    try:
        await asyncio.gather(
            *(
                _start_later(sim, index * interval / max(1, len(sims)), stop_at, interval, args)
                for index, sim in enumerate(sims)
            )
        )
    finally:
        if shared is not None:
            shared.close()
    summary = {"devices": args.devices, "seconds": args.duration, **stats.summary()}
    print(json.dumps(summary) if args.json else _human(summary))
    return 0 if stats.data_acked or args.messages == 0 else 1


async def _network(
    args: argparse.Namespace, settings: Settings
) -> tuple[Network, asyncio.BaseTransport | None]:
    """The devices' network, and the shared socket to close after (MAC envelope only)."""
    if args.dtls:
        port = args.port or settings.dtls_port
        return DtlsNetwork(args.host, port, handshake_timeout=args.handshake_timeout), None
    port = args.port or (settings.flap_raw_port if args.raw else settings.flap_base64_port)
    loop = asyncio.get_running_loop()
    transport, sock = await loop.create_datagram_endpoint(
        lambda: SharedSocket(base64=not args.raw), remote_addr=(args.host, port)
    )
    return sock, transport


async def _start_later(
    sim: SimDevice, delay: float, stop_at: float, interval: float, args: argparse.Namespace
) -> None:
    try:
        await asyncio.sleep(delay)
        await sim.run(
            stop_at=stop_at,
            interval=interval,
            poll_interval=args.poll_interval,
            messages=args.messages,
        )
    finally:
        await sim.close()


async def _add_devices(
    settings: Settings,
    serials: list[int],
    token: bytes | None,
    psk: bytes | None,
    group: str,
) -> int:
    """Adds the devices that are missing, with claim token and PSK; how many were added."""
    database = Database(settings.database_url)
    added = 0
    try:
        if database.is_sqlite:
            await database.migrate()
        for serial in serials:
            with contextlib.suppress(StoreError):  # already there
                await devices.add_device(
                    database.engine,
                    serial=serial,
                    claim_token=token or claim_token_for(serial),
                    psk=psk or psk_for(serial),
                    group=group,
                )
                added += 1
    finally:
        await database.dispose()
    return added


def _human(summary: dict[str, object]) -> str:
    return "\n".join(f"{key}: {value}" for key, value in summary.items())
