"""The DTLS port of the running embedded cloud, over real UDP on loopback.

A python-mbedtls client (`unit.dtls.kit.PskClient`) does the handshake and
sends raw FLAP packets; the tests check the answers, the communication log
and what happens when the device's key is wrong, rotated or its device is
disabled. Whole device sessions over DTLS are `nubes sim --dtls`'s (e2e).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import UdpClient, eventually
from nubes import flap
from nubes.bootstrap import Runtime
from nubes.gateway import handshakes
from nubes.services import devices
from nubes.store import tables as t
from unit.dtls.kit import PskClient

SERIAL = 2_159_017_985


@pytest.fixture(autouse=True)
def _short_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CREATE_SESSION follows these handshakes: their rows need not wait 5 s."""
    monkeypatch.setattr(handshakes, "HOLD_SECONDS", 0.05)


PSK = bytes(range(16))
TOKEN = bytes(16)


async def dtls_connect(cloud: Runtime, key: bytes = PSK) -> tuple[PskClient, UdpClient]:
    """A handshake over UDP; the client may have failed (see `client.error`)."""
    client = PskClient(f"hsn:{SERIAL}", key)
    udp = await UdpClient.open(cloud.ports["dtls"])
    pending = client.start()
    for _ in range(8):
        for datagram in pending:
            udp.send(datagram)
        if client.established or client.error is not None:
            break
        answers = [await asyncio.wait_for(udp.answers.get(), 3)]
        await asyncio.sleep(0.02)
        while not udp.answers.empty():
            answers.append(udp.answers.get_nowait())
        pending = client.handle(answers)
    return client, udp


async def exchange(client: PskClient, udp: UdpClient, packet: bytes) -> list[bytes]:
    for datagram in client.send(packet):
        udp.send(datagram)
    answer = await asyncio.wait_for(udp.answers.get(), 3)
    return client.read([answer])


async def log_rows(cloud: Runtime) -> list[dict[str, Any]]:
    log = t.session_log
    async with cloud.adapters.database.engine.connect() as conn:
        rows = await conn.execute(sa.select(log).order_by(log.c.at, log.c.id))
        return [dict(row) for row in rows.mappings()]


async def add_device(cloud: Runtime, psk: bytes | None = PSK) -> None:
    engine = cloud.adapters.database.engine
    await devices.add_device(engine, serial=SERIAL, claim_token=TOKEN, psk=psk)
    await eventually(_known(cloud), bool)


def _known(cloud: Runtime) -> Any:
    async def probe() -> bool:
        directory = cloud.gateway._directory  # type: ignore[union-attr]
        return directory.get(SERIAL) is not None

    return probe


async def test_a_flap_packet_over_dtls_is_answered_and_logged(cloud: Runtime) -> None:
    await add_device(cloud)
    client, udp = await dtls_connect(cloud)
    try:
        assert client.established, client.error
        # A fragment with a sequence number the cloud does not expect: a reset.
        (answer,) = await exchange(client, udp, flap.Packet(flap.F | flap.L, 5, b"x").encode())
        assert answer == flap.RESET.encode()
    finally:
        udp.close()
    rows = await eventually(lambda: log_rows(cloud), lambda rows: len(rows) >= 4)
    outcomes = [(row["envelope"], row["outcome"]) for row in rows]
    assert outcomes[:2] == [("dtls", "dtls_start"), ("dtls", "dtls_established")]
    assert rows[1]["detail"] == f"TLS-PSK-WITH-AES-128-CCM-8 as hsn:{SERIAL}"
    assert ("dtls", "reset") in outcomes[2:]
    assert rows[1]["remote"].startswith("127.0.0.1:")


async def test_a_wrong_key_fails_the_handshake_and_says_why(cloud: Runtime) -> None:
    await add_device(cloud)
    client, udp = await dtls_connect(cloud, key=bytes(range(1, 17)))
    udp.close()
    assert not client.established
    rows = await eventually(
        lambda: log_rows(cloud), lambda rows: any(r["outcome"] == "dtls_failed" for r in rows)
    )
    (failed,) = [row for row in rows if row["outcome"] == "dtls_failed"]
    assert failed["detail"].startswith("bad_key")
    assert cloud.gateway is not None
    assert cloud.gateway.counters["dtls:dtls_failed:bad_key"] == 1


async def test_a_device_without_a_psk_is_an_unknown_identity(cloud: Runtime) -> None:
    await add_device(cloud, psk=None)
    client, udp = await dtls_connect(cloud)
    udp.close()
    assert not client.established
    rows = await eventually(
        lambda: log_rows(cloud), lambda rows: any(r["outcome"] == "dtls_failed" for r in rows)
    )
    (detail,) = [r["detail"] for r in rows if r["outcome"] == "dtls_failed"]
    assert detail.startswith("unknown_identity")


async def test_an_unknown_serial_is_only_counted(cloud: Runtime) -> None:
    client, udp = await dtls_connect(cloud)  # no device at all
    udp.close()
    assert not client.established
    await eventually(_counter(cloud, "dtls:dtls_failed:unknown_identity"), lambda count: count == 1)
    assert await log_rows(cloud) == []


async def test_either_key_works_during_a_rotation(cloud: Runtime) -> None:
    await add_device(cloud)
    newer = bytes(range(50, 82))
    await devices.set_psk(cloud.adapters.database.engine, SERIAL, newer, grace_seconds=600)
    directory = cloud.gateway._directory  # type: ignore[union-attr]
    await eventually(_psks(directory), lambda keys: len(keys) == 2)
    for key in (PSK, newer):
        client, udp = await dtls_connect(cloud, key=key)
        udp.close()
        assert client.established, (key, client.error)
    rows = await eventually(
        lambda: log_rows(cloud),
        lambda rows: sum(r["outcome"] == "dtls_established" for r in rows) == 2,
    )
    established = [row["detail"] for row in rows if row["outcome"] == "dtls_established"]
    assert established[0].endswith("with the replaced PSK")
    assert not established[1].endswith("with the replaced PSK")


async def test_disabling_the_device_ends_its_association(cloud: Runtime) -> None:
    await add_device(cloud)
    client, udp = await dtls_connect(cloud)
    try:
        assert client.established
        engine = cloud.adapters.database.engine
        async with engine.begin() as conn:
            await conn.execute(
                sa.update(t.devices).where(t.devices.c.serial == SERIAL).values(enabled=False)
            )
            await devices.touch_device(conn, (await _device_id(conn)))
        directory = cloud.gateway._directory  # type: ignore[union-attr]
        await eventually(_enabled(directory), lambda enabled: enabled is False)
        for datagram in client.send(flap.Packet(flap.F | flap.L, 5, b"x").encode()):
            udp.send(datagram)
        assert cloud.dtls is not None
        await eventually(
            _count(lambda: cloud.dtls.server.association_count),
            lambda n: n == 0,  # type: ignore[union-attr]
        )
    finally:
        udp.close()
    rows = await eventually(
        lambda: log_rows(cloud), lambda rows: any(r["outcome"] == "dtls_closed" for r in rows)
    )
    assert [r["detail"] for r in rows if r["outcome"] == "dtls_closed"] == ["closed"]


async def _device_id(conn: Any) -> Any:
    return (
        await conn.execute(sa.select(t.devices.c.id).where(t.devices.c.serial == SERIAL))
    ).scalar()


def _counter(cloud: Runtime, name: str) -> Any:
    async def probe() -> int:
        assert cloud.gateway is not None
        return cloud.gateway.counters[name]

    return probe


def _count(read: Any) -> Any:
    async def probe() -> int:
        return int(read())

    return probe


def _psks(directory: Any) -> Any:
    async def probe() -> list[bytes]:
        return list(directory.psks(SERIAL))

    return probe


def _enabled(directory: Any) -> Any:
    async def probe() -> bool:
        return bool(directory.get(SERIAL).enabled)

    return probe


async def test_garbage_and_hello_floods_leave_no_state_and_the_port_serving(
    cloud: Runtime,
) -> None:
    await add_device(cloud)
    rng = random.Random(5)
    sockets = [await UdpClient.open(cloud.ports["dtls"]) for _ in range(20)]
    try:
        for index in range(2_000):
            udp = sockets[index % len(sockets)]
            size = rng.choice([0, 1, 13, 14, 60, 300, 1500])
            udp.send(bytes(rng.randrange(256) for _ in range(size)))
            if index % 4 == 0:  # a ClientHello without a cookie, from 20 addresses
                udp.send(PskClient(f"hsn:{rng.randrange(1, 2**32)}", PSK).start()[0])
        await asyncio.sleep(0.3)
        assert cloud.dtls is not None
        assert cloud.dtls.server.handshake_count == 0
        assert cloud.dtls.server.association_count == 0
        client, udp = await dtls_connect(cloud)
        udp.close()
        assert client.established, client.error
    finally:
        for udp in sockets:
            udp.close()
