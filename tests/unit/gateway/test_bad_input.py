"""What the gateway does with datagrams it must not trust.

The outcomes are the documented ones (docs/devices.md): no answer at all to
garbage, invalid base64, short envelopes, serial 0, unknown serials and
disabled devices (only counted); a reset packet to a known serial with a
wrong tag; no ack for a message the pipeline did not accept. The process
keeps serving throughout.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import UdpClient
from nubes import flap
from nubes.bootstrap import Runtime
from nubes.gateway.directory import DeviceInfo
from nubes.gateway.link import Channel
from nubes.gateway.service import Gateway, MacChannel
from nubes.services import devices
from nubes.sim.runner import claim_token_for
from nubes.store import tables as t

SERIAL = 2001


async def known_device(cloud: Runtime) -> bytes:
    key = claim_token_for(SERIAL)
    await devices.add_device(cloud.adapters.database.engine, serial=SERIAL, claim_token=key)
    await asyncio.sleep(0.3)
    return key


def data_packet(seq: int) -> bytes:
    return flap.Packet(flap.F | flap.L, seq, b"\x06" + bytes(8) + b"\xa0").encode()


async def test_datagrams_that_get_no_answer(cloud: Runtime) -> None:
    key = await known_device(cloud)
    raw = await UdpClient.open(cloud.ports["raw"])
    b64 = await UdpClient.open(cloud.ports["base64"])
    try:
        good = flap.seal(key, SERIAL, data_packet(0))
        assert await b64.exchange(b"not base64 at all!", 0.3) is None
        assert await b64.exchange(base64.b64encode(good[:13]), 0.3) is None  # short
        assert await raw.exchange(flap.seal(key, 0, data_packet(0)), 0.3) is None  # serial 0
        assert await raw.exchange(flap.seal(key, 999_999, data_packet(0)), 0.3) is None
        # Over 1024 bytes is cut to 1024 (as the documented cloud does): here an unknown serial.
        assert (
            await raw.exchange(bytes(8) + (999_998).to_bytes(4, "big") + bytes(2000), 0.3) is None
        )
        assert await raw.exchange(flap.seal(key, SERIAL, b"\x20"), 0.3) is None  # 1-byte packet
        # ... and the gateway still serves the device afterwards
        answer = await raw.exchange(good)
        assert answer is not None
        assert answer[12:14] == bytes.fromhex("2001")
    finally:
        raw.close()
        b64.close()
    assert cloud.gateway is not None
    counters = cloud.gateway.counters
    assert counters["dropped:unknown serial"] == 2
    assert counters["dropped:serial 0"] == 1
    assert counters["dropped:invalid base64"] == 1


async def test_a_wrong_tag_of_a_known_serial_gets_a_reset(cloud: Runtime) -> None:
    key = await known_device(cloud)
    client = await UdpClient.open(cloud.ports["raw"])
    try:
        forged = bytearray(flap.seal(key, SERIAL, data_packet(0)))
        forged[0] ^= 0xFF
        answer = await client.exchange(bytes(forged))
    finally:
        client.close()
    assert answer is not None
    envelope = flap.open_envelope(answer)
    assert flap.verify(envelope, key)
    assert envelope.packet == b"\x00\x00"


async def test_a_disabled_device_gets_no_answer(cloud: Runtime) -> None:
    key = await known_device(cloud)
    engine = cloud.adapters.database.engine
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(t.devices)
            .where(t.devices.c.serial == SERIAL)
            .values(enabled=False, changed_at=datetime.now(UTC))
        )
    await asyncio.sleep(0.3)
    client = await UdpClient.open(cloud.ports["raw"])
    try:
        assert await client.exchange(flap.seal(key, SERIAL, data_packet(0)), 0.3) is None
    finally:
        client.close()


class RefusingPublisher:
    """A pipeline that never accepts: the device must never be acked."""

    def submit(self, records: list[object], on_done: object = None) -> None:
        if callable(on_done):
            asyncio.get_running_loop().call_soon(on_done, RuntimeError("broker down"))

    def add(self, record: object) -> None:
        return None


class RecordingChannel:
    envelope = "raw"
    remote = ("127.0.0.1", 1)
    size_in = 20

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, packet: bytes) -> int:
        self.sent.append(packet)
        return len(packet)


async def test_nothing_is_acked_that_the_pipeline_did_not_accept(cloud: Runtime) -> None:
    await known_device(cloud)
    gateway = cloud.gateway
    assert gateway is not None
    gateway._publisher = RefusingPublisher()  # type: ignore[assignment]
    info = gateway._directory.get(SERIAL)
    assert isinstance(info, DeviceInfo)
    channel: Channel = RecordingChannel()
    link = gateway._link(info, channel, 0.0)
    link.reload_downlinks = False
    gateway.on_packet(link, data_packet(0), channel)
    await asyncio.sleep(0.2)
    assert channel.sent == []  # type: ignore[attr-defined]
    assert not link.busy
    assert not link.transfer.awaiting_commit
    # The device's repeat is processed afresh (and refused again), not acked from a cache.
    gateway.on_packet(link, data_packet(0), channel)
    await asyncio.sleep(0.2)
    assert channel.sent == []  # type: ignore[attr-defined]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(datagram=st.binary(max_size=1100), base64_port=st.booleans())
def test_random_datagrams_never_break_the_gateway(datagram: bytes, base64_port: bool) -> None:
    gateway = _offline_gateway()
    channel = MacChannel(_NullTransport(), ("127.0.0.1", 9), len(datagram), base64_port)  # type: ignore[arg-type]
    gateway.on_mac_datagram(datagram, channel)
    gateway.on_mac_datagram(base64.b64encode(datagram), channel)


class _NullTransport:
    def sendto(self, data: bytes, addr: object = None) -> None:
        raise AssertionError("nothing may be answered to a stranger")


class _EmptyDirectory:
    def get(self, serial: int) -> None:
        return None

    def on_change(self, listener: object) -> None:
        return None


def _offline_gateway() -> Gateway:
    return Gateway(
        engine=None,  # type: ignore[arg-type]
        directory=_EmptyDirectory(),  # type: ignore[arg-type]
        publisher=RefusingPublisher(),  # type: ignore[arg-type]
        session_ids=None,  # type: ignore[arg-type]
        publish_timeout=1.0,
        idle_seconds=60,
        max_links=10,
    )


async def test_a_forged_datagram_does_not_disturb_the_device(cloud: Runtime) -> None:
    key = await known_device(cloud)
    device = await UdpClient.open(cloud.ports["base64"])
    attacker = await UdpClient.open(cloud.ports["raw"])
    try:
        first = await device.exchange(base64.b64encode(flap.seal(key, SERIAL, data_packet(0))))
        assert first is not None
        assert base64.b64decode(first)[12:14] == bytes.fromhex("2001")
        forged = bytearray(flap.seal(bytes(16), SERIAL, data_packet(2)))
        reset = await attacker.exchange(bytes(forged))
        assert reset is not None
        assert reset[12:14] == b"\x00\x00"
        second = await device.exchange(base64.b64encode(flap.seal(key, SERIAL, data_packet(2))))
        assert second is not None
        assert base64.b64decode(second)[12:14] == bytes.fromhex("2003")
    finally:
        device.close()
        attacker.close()
