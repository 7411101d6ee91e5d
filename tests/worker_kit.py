"""Batch builders and database readers shared by the pipeline worker's tests.

tests/unit/pipeline/test_worker.py (SQLite) and
tests/integration/pipeline/test_worker_postgres.py (PostgreSQL) build their
batches as the gateway does: device-side messages from `nubes.sim.messages`,
translated by the gateway's own `translate`, wrapped by the builders of
`nubes.pipeline.records`. What the gateway saw of the device's session (its
id, envelope, peer address, packet flags) differs between the two on purpose,
so each module describes it once as a `Link` and takes its builders from it:

    LINK = Link(session_id=SESSION_ID, envelope="base64", ...)
    uplink, data, session_start, packet_log = (
        LINK.uplink, LINK.data, LINK.session_start, LINK.packet_log
    )

The pytest fixtures stay in the test modules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from types import EllipsisType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes import flap
from nubes.codec import codec_from_yaml, to_json
from nubes.gateway.translate import translate
from nubes.pipeline.records import Record, log_record, message_record, session_record
from nubes.services import devices
from nubes.sim import messages as m
from nubes.sim.runner import claim_token_for
from nubes.store import tables as t

AT = 1_750_000_000.0  # a fixed instant (2025-06-15), so stored times compare exactly

DEMO_DECODER = resources.files("nubes.sim").joinpath("codecs", "demo.decoder.yaml").read_text()
DEMO = codec_from_yaml(DEMO_DECODER)
DEMO_HASH, DEMO_UPLOAD = m.upload_codec("decoder", DEMO_DECODER)


@dataclass(frozen=True, slots=True)
class Device:
    """What the record builders need of a device (as the gateway's `DeviceInfo`)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    group_id: uuid.UUID | None
    serial: int


# -- batches as the gateway builds them ------------------------------------------------


def frame(sequence: int) -> dict[int, Any]:
    """Demo application data: message.sequence, system.voltage_rest, thermometer.temperature."""
    return {0: {2: sequence}, 4: {6: 3641}, 27: {28: 2243}}


def expected_body(sequence: int) -> dict[str, Any]:
    """What the demo decoder makes of `frame(sequence)`."""
    return {
        "message": {"sequence": sequence},
        "system": {"voltage_rest": 3.64},
        "thermometer": {"temperature": 22.43},
    }


@dataclass(frozen=True, slots=True)
class Link:
    """What the gateway saw of a device's session, and the records it builds over it.

    `session_id` is the default of session and log records; uplinks carry it
    too unless `uplinks_in_session` is false (then they carry none unless told).
    `attributes` are what `session_start` sends when not given others.
    """

    session_id: int
    envelope: str
    remote: tuple[str, int]
    flags: int
    attributes: dict[int, Any]
    seq: int = 0
    uplinks_in_session: bool = True

    def uplink(
        self,
        device: Device,
        raw: bytes,
        *,
        at: float = AT,
        session_id: int | EllipsisType | None = ...,
    ) -> Record:
        """The message record of a reassembled uplink, translated by the gateway's code."""
        if isinstance(session_id, EllipsisType):
            session_id = self.session_id if self.uplinks_in_session else None
        translation = translate(flap.parse_uplink(raw))
        return message_record(
            message_id=uuid.uuid4(),
            at=at,
            device=device,
            session_id=session_id,
            type_name=translation.type_name,
            direction="up",
            raw=raw,
            body=translation.body,
            codec_hash=translation.codec_hash,
        )

    def data(
        self, device: Device, sequence: int, decoder_hash: int = DEMO_HASH, **kw: Any
    ) -> Record:
        """An uplink of `frame(sequence)` for the decoder `decoder_hash`."""
        return self.uplink(device, m.upload_data(decoder_hash, frame(sequence)), **kw)

    def session_start(
        self,
        device: Device,
        attributes: dict[int, Any] | None = None,
        *,
        session_id: int | None = None,
        at: float = AT,
    ) -> Record:
        create = flap.parse_uplink(
            m.create_session(self.attributes if attributes is None else attributes)
        )
        assert isinstance(create, flap.CreateSession)
        named = to_json(create.named())
        assert isinstance(named, dict)
        return session_record(
            session_id=self.session_id if session_id is None else session_id,
            device_id=device.id,
            organization_id=device.organization_id,
            envelope=self.envelope,
            remote=self.remote,
            at=at,
            attributes=named,
        )

    def packet_log(
        self,
        device: Device,
        direction: str,
        size: int,
        *,
        session_id: int | None = None,
        at: float = AT,
        seq: int | None = None,
        message_id: uuid.UUID | None = None,
        detail: str = "",
        outcome: str | None = None,
    ) -> Record:
        """A packet's log record; its outcome is "invalid" if it has a detail, unless told."""
        return log_record(
            session_id=self.session_id if session_id is None else session_id,
            device_id=device.id,
            at=at,
            direction=direction,
            envelope=self.envelope,
            remote=self.remote,
            flags=self.flags,
            seq=self.seq if seq is None else seq,
            size=size,
            outcome=("invalid" if detail else "accepted") if outcome is None else outcome,
            detail=detail,
            message_id=message_id,
        )


def ids(records: list[Record]) -> list[str]:
    """The ids of the message records, in order."""
    return [str(record["id"]) for record in records if record["kind"] == "message"]


def when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# -- the database -----------------------------------------------------------------------


async def select(engine: AsyncEngine, query: sa.Select[Any]) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def message(engine: AsyncEngine, record: Record) -> dict[str, Any]:
    rows = await select(engine, sa.select(t.messages).where(t.messages.c.id == record["id"]))
    assert len(rows) == 1, f"message {record['id']} stored {len(rows)} times"
    return rows[0]


async def message_ids(engine: AsyncEngine) -> list[str]:
    rows = await select(engine, sa.select(t.messages.c.id))
    return sorted(str(row["id"]) for row in rows)


async def device_row(engine: AsyncEngine, device: Device) -> dict[str, Any]:
    (row,) = await select(engine, sa.select(t.devices).where(t.devices.c.id == device.id))
    return row


async def add_device(
    engine: AsyncEngine, serial: int, organization: str = devices.DEFAULT_ORGANIZATION
) -> Device:
    row = await devices.add_device(
        engine, serial=serial, claim_token=claim_token_for(serial), organization=organization
    )
    return Device(row["id"], row["organization_id"], row["group_id"], serial)
