"""Link snapshots shared between gateways: bytes, versions, bad input."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import cbor2

from helpers import eventually
from nubes import flap
from nubes.gateway.directory import DeviceInfo
from nubes.gateway.downlinks import Offer
from nubes.gateway.handover import adopt, snapshot_of
from nubes.gateway.link import DeviceLink
from nubes.gateway.state import LinkSnapshot, RestCache, StateWriter, decode, encode

LIMIT = 360


def _link() -> DeviceLink:
    info = DeviceInfo(
        uuid.uuid4(), uuid.uuid4(), None, 42, b"k" * 16, None, "d", True, None, None, None,
        None, datetime.now(UTC),
    )  # fmt: skip
    return DeviceLink(info, flap.Transfer(LIMIT), LIMIT, 0.0)


def _served() -> DeviceLink:
    """A link that acked a session start and sent the first fragment of a downlink."""
    link = _link()
    link.info.session_id = 7
    link.transfer.receive(flap.Packet(flap.F | flap.L, 0, b"\x00\xa0"), 1.0)
    link.transfer.commit(1.0)
    stored = uuid.uuid4()
    link.offer(Offer(stored, "shell", b"\x90" + b"x" * 500, {"commands": ["a"]}, stored=True))
    link.offer(Offer(("session", 7), "session", b"\x80\xa0", {"session_id": 7}, stored=False))
    link.delivered.append(("timestamp", 1.5))
    link.transfer.receive(flap.Packet(flap.P, 2), 2.0)
    return link


def test_a_snapshot_continues_the_transfer_in_another_link() -> None:
    served = _served()
    snapshot = snapshot_of(served, "gw-a")
    assert snapshot is not None
    other = _link()
    restored = decode(encode(snapshot))
    assert restored == snapshot
    assert adopt(other, restored)
    assert other.info.session_id == 7
    assert list(other.offers) == list(served.offers)
    assert list(other.delivered) == [("timestamp", 1.5)]
    # The device acks the first fragment: both links answer the same.
    ack = flap.Packet(flap.A, 4)
    assert other.transfer.receive(ack, 3.0) == served.transfer.receive(ack, 3.0)


def test_an_older_snapshot_does_not_replace_fresher_local_state() -> None:
    served = _served()
    old = snapshot_of(served, "gw-a")
    assert old is not None
    newer = snapshot_of(served, "gw-a")
    assert newer is not None
    assert newer.version > old.version
    assert not adopt(served, old)
    assert not adopt(served, newer)  # the same version is not newer either


def test_no_snapshot_while_an_uplink_awaits_its_ack() -> None:
    link = _link()
    link.transfer.receive(flap.Packet(flap.F | flap.L, 0, b"\x00\xa0"), 1.0)
    assert snapshot_of(link, "gw-a") is None


def test_garbage_and_other_formats_are_ignored() -> None:
    snapshot = snapshot_of(_served(), "gw-a")
    assert snapshot is not None
    raw = encode(snapshot)
    for bad in (b"", b"\xff\x00garbage", raw[:20], cbor2.dumps([99, 1, 2]), cbor2.dumps({})):
        assert decode(bad) is None


def test_an_inconsistent_snapshot_is_not_adopted() -> None:
    snapshot = snapshot_of(_served(), "gw-a")
    assert snapshot is not None
    # A downlink phase without its downlink:
    inconsistent = snapshot._replace(transfer=snapshot.transfer._replace(out=None))
    broken = decode(encode(inconsistent))
    assert broken is not None
    link = _link()
    assert not adopt(link, broken)
    assert link.version == 0


def test_a_fresh_link_and_learnt_hashes_round_trip() -> None:
    link = _link()
    link.info.decoder_hash, link.info.config_hash = "6940c0933067d636", "00ff00ff00ff00ff"
    snapshot = snapshot_of(link, "gw-b")
    assert snapshot is not None
    assert snapshot.transfer.last is None
    assert snapshot.session_id is None
    assert decode(encode(snapshot)) == snapshot


def test_bytes_that_do_not_add_up_are_ignored() -> None:
    raw = encode(_snapshot_of_served())
    for bad in (raw[:-1], raw + b"\x00", raw[: len(raw) // 2]):
        assert decode(bad) is None


def test_an_unchanged_rest_is_encoded_once() -> None:
    """Offers and delivered ids are encoded again only when they change."""
    served = _served()
    cache = RestCache()
    first = _snapshot_of(served)
    assert encode(first, cache) == encode(first)
    rest = cache.raw
    assert rest
    second = _snapshot_of(served)
    assert second.version > first.version
    assert decode(encode(second, cache)) == second
    assert cache.raw is rest  # reused, not encoded again
    served.delivered.append(uuid.uuid4())
    third = _snapshot_of(served)
    restored = decode(encode(third, cache))
    assert restored is not None
    assert restored.delivered == third.delivered
    assert len(restored.delivered) == 2


def _snapshot_of(link: DeviceLink) -> LinkSnapshot:
    snapshot = snapshot_of(link, "gw-a")
    assert snapshot is not None
    return snapshot


def _snapshot_of_served() -> LinkSnapshot:
    return _snapshot_of(_served())


class FlakyRedis:
    """Saves fail while `down`; what was saved is kept by serial."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.saved: dict[int, bytes] = {}

    async def save(self, snapshots: list[tuple[int, bytes]]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Redis is restarting")
        self.saved.update(snapshots)


def _snapshot_bytes(serial: int) -> bytes:
    return b"snapshot of %d" % serial


async def test_a_failed_save_is_tried_again() -> None:
    redis = FlakyRedis(failures=1)
    writer = StateWriter(redis, _snapshot_bytes, retry_seconds=0.01)  # type: ignore[arg-type]
    writer.changed(1)
    writer.changed(2)

    async def saved() -> dict[int, bytes]:
        return dict(redis.saved)

    assert await eventually(saved, lambda s: len(s) == 2, timeout=5.0) == {
        1: b"snapshot of 1",
        2: b"snapshot of 2",
    }
    assert (writer.failed, writer.saved) == (2, 2)
    await writer.close()


async def test_closing_gives_a_failed_save_up() -> None:
    redis = FlakyRedis(failures=1_000)
    writer = StateWriter(redis, _snapshot_bytes, retry_seconds=60.0)  # type: ignore[arg-type]
    writer.changed(1)
    await asyncio.wait_for(writer.close(), 5.0)
    assert redis.saved == {}
    assert writer.failed >= 1
