"""Simulated CHESTERs against the running embedded cloud: the whole loop.

Each test drives `nubes.sim` devices (the firmware's behaviour over real
UDP) and then looks at what the database holds: sessions, decoded data,
codecs, config, downlink states, replies linked to their commands.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources

import pytest
import sqlalchemy as sa

from helpers import eventually
from nubes.bootstrap import Runtime
from nubes.flap import MessageType
from nubes.services import devices, downlinks, queries
from nubes.sim.device import Profile, SharedSocket, SimDevice, Stats
from nubes.sim.runner import claim_token_for
from nubes.store import tables as t

DECODER = resources.files("nubes.sim").joinpath("codecs", "demo.decoder.yaml").read_text()
ENCODER = resources.files("nubes.sim").joinpath("codecs", "demo.encoder.yaml").read_text()


async def start_device(cloud: Runtime, serial: int, *, envelope: str = "base64") -> SimDevice:
    engine = cloud.adapters.database.engine
    await devices.add_device(engine, serial=serial, claim_token=claim_token_for(serial))
    await asyncio.sleep(0.3)
    loop = asyncio.get_running_loop()
    _, sock = await loop.create_datagram_endpoint(
        lambda: SharedSocket(base64=envelope == "base64"),
        remote_addr=("127.0.0.1", cloud.ports[envelope]),
    )
    profile = Profile(
        serial,
        claim_token_for(serial),
        DECODER,
        ENCODER,
        ["app config interval-sample 60"],
        timeout=5.0,
    )
    return SimDevice(profile, sock, Stats(), seed=serial)


@pytest.mark.parametrize("envelope", ["base64", "raw"])
async def test_a_device_session_ends_up_decoded_in_the_database(
    cloud: Runtime, envelope: str
) -> None:
    engine = cloud.adapters.database.engine
    sim = await start_device(cloud, 1001, envelope=envelope)
    await sim.run(stop_at=time.monotonic() + 20, interval=0.05, poll_interval=60, messages=3)
    assert sim.session.get(0), "no SET_SESSION received"

    rows = await eventually(
        lambda: queries.device_messages(engine, 1001, type_name="data"),
        lambda rows: len(rows) == 3,
    )
    assert all(row["decode_state"] == "decoded" for row in rows)
    assert [row["body"]["message"]["sequence"] for row in rows] == [3, 2, 1]
    assert isinstance(rows[0]["body"]["system"]["voltage_rest"], float)

    device = await devices.get_device(engine, 1001)
    assert device["decoder_hash"] == f"{sim.decoder_hash:016x}"
    assert device["encoder_hash"] == f"{sim.encoder_hash:016x}"
    assert device["fw_name"] == "nubes-sim"
    assert device["session_id"] == sim.session[0]
    sessions = await queries.device_sessions(engine, 1001)
    assert [s["id"] for s in sessions] == [sim.session[0]]
    assert sessions[0]["envelope"] == envelope
    assert sessions[0]["messages_in"] >= 6  # session, decoder, encoder, config, 3 data
    log = await eventually(
        lambda: queries.session_log(engine, sim.session[0]),
        lambda rows: len(rows) >= 20,
    )
    assert log[0]["direction"] == "in"
    assert log[0]["seq"] == 0
    assert log[0]["flag_text"] == "[FLxx]"
    assert log[0]["message_id"] is not None
    assert log[1]["direction"] == "out"
    assert log[1]["flag_text"] == "[xxAP]"


async def test_a_second_session_skips_the_uploads_the_cloud_has(cloud: Runtime) -> None:
    engine = cloud.adapters.database.engine
    sim = await start_device(cloud, 1002)
    await sim.run(stop_at=time.monotonic() + 20, interval=0.05, poll_interval=60, messages=1)
    first_uploads = sim._stats.uploads
    await eventually(
        lambda: devices.get_device(engine, 1002), lambda d: d["config_hash"] is not None
    )
    assert await sim.start_session()
    assert sim.session[1] == sim.decoder_hash
    assert sim.session[2] == sim.encoder_hash
    await sim.synchronise()
    assert first_uploads == 3
    assert sim._stats.uploads == 3, "the second session uploaded again"


async def test_shell_config_and_data_downlinks_reach_the_device(cloud: Runtime) -> None:
    engine = cloud.adapters.database.engine
    sim = await start_device(cloud, 1003)
    await sim.run(stop_at=time.monotonic() + 20, interval=0.05, poll_interval=60, messages=1)
    await eventually(lambda: devices.get_device(engine, 1003), lambda d: d["encoder_hash"])

    shell = await downlinks.queue_shell(engine, 1003, ["app config show"])
    data = await downlinks.queue_data(engine, 1003, {"led_r": 1, "led_g": 0})
    config = await downlinks.queue_config(engine, 1003, ["app config interval-sample 30"])
    await sim.poll_all()  # the very next poll, no waiting for a refresh

    kinds = [d.type for d in sim.received]
    assert MessageType.DOWNLOAD_SHELL in kinds
    assert MessageType.DOWNLOAD_DATA in kinds
    assert MessageType.DOWNLOAD_CONFIG in kinds
    data_downlink = next(d for d in sim.received if d.type == MessageType.DOWNLOAD_DATA)
    assert data_downlink.value == (sim.encoder_hash, {0: 1, 1: 0})
    assert "app config interval-sample 30" in sim.profile.config
    assert sim.reboot_requested

    async def states() -> dict[str, tuple[str, object]]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.select(t.downlinks.c.id, t.downlinks.c.state, t.downlinks.c.reply_message_id)
            )
            return {str(r.id): (r.state, r.reply_message_id) for r in rows}

    final = await eventually(
        states,
        lambda s: (
            all(v[0] == "delivered" for v in s.values()) and s[str(shell["id"])][1] is not None
        ),
    )
    assert {str(shell["id"]), str(data["id"]), str(config["id"])} == set(final)
    reply = await eventually(
        lambda: queries.device_messages(engine, 1003, type_name="shell"),
        lambda rows: any(r["direction"] == "up" for r in rows),
    )
    answer = next(r for r in reply if r["direction"] == "up")
    assert answer["id"] == str(final[str(shell["id"])][1])
    assert answer["body"]["results"][0]["output"] == ["app config interval-sample 60"]


async def test_a_cancelled_downlink_is_not_offered(cloud: Runtime) -> None:
    engine = cloud.adapters.database.engine
    sim = await start_device(cloud, 1004)
    await sim.run(stop_at=time.monotonic() + 20, interval=0.05, poll_interval=60, messages=1)
    queued = await downlinks.queue_shell(engine, 1004, ["app config show"])
    assert await downlinks.cancel_downlink(engine, queued["id"])
    await asyncio.sleep(0.3)
    sim.received.clear()
    await sim.poll_all()
    assert [d.type for d in sim.received] == []
