"""A real CHESTER boot, datagram by datagram, against the running gateway.

The trace (shared/vectors/chester-boot-trace.txt) was recorded between the
firmware and HARDWARIO's cloud: session start, config upload, a config
downlink, an empty poll, a shell downlink and its answer. Replayed over UDP
against our gateway, every answer must carry the same header (flags and
sequence), no answer must come where the cloud gave none, and the config
downlink must be byte-identical (the same lines queued through the CLI's
service). What the worker stored is checked at the end.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from helpers import UdpClient, eventually
from nubes import flap
from nubes.bootstrap import Runtime
from nubes.services import devices, downlinks, queries
from nubes.store import tables as t

TRACE = Path(__file__).resolve().parents[3].parent / "shared" / "vectors" / "chester-boot-trace.txt"
TOKEN = bytes.fromhex("98a8856ba6534bd5212176b22f3acbb3")
SERIAL = 2159017985
CONFIG_LINES = [
    "app config interval-sample 10",
    "app config interval-report 60",
    "app config backup-report-connected true",
]


def trace_pairs() -> list[tuple[bytes, bytes | None]]:
    lines = [line.split() for line in TRACE.read_text().splitlines() if line.strip()]
    pairs = []
    for (up_dir, up), (down_dir, down) in zip(lines[0::2], lines[1::2], strict=False):
        assert (up_dir, down_dir) == ("up", "down")
        pairs.append((bytes.fromhex(up), None if down == "-" else bytes.fromhex(down)))
    return pairs


async def test_the_recorded_boot_gets_the_recorded_answers(cloud: Runtime) -> None:
    engine = cloud.adapters.database.engine
    await devices.add_device(engine, serial=SERIAL, claim_token=TOKEN, name="test-device")
    await asyncio.sleep(0.3)  # the directory refreshes every 0.1 s here
    client = await UdpClient.open(cloud.ports["raw"])
    try:
        for index, (up, expected) in enumerate(trace_pairs()):
            header = up[12:14].hex()
            if header == "c005":  # before the config upload, the user queues a config change
                await downlinks.queue_config(engine, SERIAL, CONFIG_LINES)
                await asyncio.sleep(0.3)
            if header == "100c":  # before this poll, a shell command
                await downlinks.queue_shell(engine, SERIAL, ["app config show"])
                await asyncio.sleep(0.3)
            answer = await client.exchange(up, timeout=5.0 if expected else 0.3)
            if expected is None:
                assert answer is None, f"step {index}: answered {answer!r}, the cloud did not"
                continue
            assert answer is not None, f"step {index} ({header}): no answer"
            assert answer[8:14] == expected[8:14], (
                f"step {index}: {answer.hex()} != {expected.hex()}"
            )
            envelope = flap.open_envelope(answer)
            assert flap.verify(envelope, TOKEN)
            if expected[14:15] == b"\x82":  # DOWNLOAD_CONFIG: identical bytes
                assert answer == expected
    finally:
        client.close()

    stored = await eventually(
        lambda: queries.device_messages(engine, SERIAL, limit=20),
        lambda rows: any(r["type"] == "shell" and r["direction"] == "up" for r in rows),
    )
    kinds = {(r["type"], r["direction"]) for r in stored}
    assert {
        ("session", "up"),
        ("config", "up"),
        ("config", "down"),
        ("shell", "down"),
        ("shell", "up"),
        ("session", "down"),
    } <= kinds
    shell_answer = next(r for r in stored if r["type"] == "shell" and r["direction"] == "up")
    assert shell_answer["body"]["results"][0]["command"] == "app config show"

    device = await devices.get_device(engine, SERIAL)
    assert device["vendor"] == "HARDWARIO"
    assert device["product"] == "CHESTER-M"
    assert device["config_hash"] == "73a9151b127641bb"
    async with engine.connect() as conn:
        states = (await conn.execute(sa.select(t.downlinks.c.kind, t.downlinks.c.state))).all()
    # (The recorded shell answer carries the recorded id, not ours: it cannot be linked.)
    assert sorted(tuple(row) for row in states) == [("config", "delivered"), ("shell", "delivered")]
