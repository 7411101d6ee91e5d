"""The pipeline worker: decodes uplinks, stores them, announces them.

It consumes batches from the `uplink` topic (queue `store`), turns every
record into rows (data is decoded here with the codec its hash names),
writes the batch in one transaction and then publishes one `message.stored`
event batch for the messages that were new. The broker message is
acknowledged only after the commit: a worker that dies mid-batch leaves the
batch to another worker, and message ids make the second store a no-op.

Data whose codec is unknown is stored undecoded; when a decoder arrives,
the worker decodes the waiting messages of that organization and hash.
Run as many workers as the database can take.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.codec import codec_from_cbor, decode
from nubes.errors import CodecError
from nubes.pipeline.broker import MESSAGE_STORED, UPLINK, Broker
from nubes.pipeline.codecbook import CodecBook
from nubes.pipeline.live import Live
from nubes.pipeline.metrics import WorkerStats
from nubes.pipeline.records import Batch, Record, read_batch
from nubes.pipeline.rows import (
    add_session,
    downlink_row,
    fit,
    log_row,
    mark_seen,
    message_row,
    stored_event,
    without_nul,
)
from nubes.services.downlinks import expire_downlinks
from nubes.store import tables as t
from nubes.store.ingest import Changes, Ingest, Row
from nubes.store.retention import Retention

log = logging.getLogger(__name__)

STORE_QUEUE = "store"
# How long a stored batch's id is kept: RabbitMQ redelivers unacked messages
# within minutes (a worker's connection closing), never after a day.
BATCH_MEMORY = timedelta(days=1)
# A device's `last_seen_at` is written when it moves by this much (or with
# any other change of the device).
LAST_SEEN_STEP = timedelta(seconds=30)
DATA_OFFSET = 9  # type byte + 8 hash bytes


class Worker:
    """Consumes `uplink`, writes the database, publishes `message.stored`."""

    def __init__(
        self,
        engine: AsyncEngine,
        broker: Broker,
        prefetch: int,
        live: Live | None = None,
        retention: Retention | None = None,
    ) -> None:
        self._engine = engine
        self._retention = retention or Retention(engine)
        self._broker = broker
        self._live = live
        self._prefetch = prefetch
        self._ingest = Ingest(engine)
        self._codecs = CodecBook(engine)
        self._redecodes: set[asyncio.Task[None]] = set()
        self._waiting: list[tuple[Batch, asyncio.Future[None]]] = []
        self._seen_written: dict[uuid.UUID, datetime] = {}
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.stats = WorkerStats()

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="worker-writer")
        await self._broker.consume(UPLINK, STORE_QUEUE, self.handle, self._prefetch)

    async def close(self) -> None:
        tasks = [*self._redecodes, *([self._writer] if self._writer else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _skip_fresh_last_seen(self, changes: Changes) -> dict[uuid.UUID, datetime]:
        """Drops `last_seen_at` updates that would move it by less than LAST_SEEN_STEP.

        A busy device would otherwise cost a row update in every batch (at
        thousands of messages per second, most of the worker's database
        time). Returns what this batch writes, to remember after the commit.
        """
        if len(self._seen_written) > 100_000:
            self._seen_written.clear()
        written: dict[uuid.UUID, datetime] = {}
        for device_id, update in changes.device_updates.items():
            seen = update.get("last_seen_at")
            if seen is None:
                continue
            before = self._seen_written.get(device_id)
            if before is not None and seen - before < LAST_SEEN_STEP and len(update) == 1:
                del update["last_seen_at"]
            else:
                written[device_id] = seen
        return written

    async def tidy(self) -> None:
        """Housekeeping: expire old downlinks, forget batch ids older than a day,
        delete what is older than each organization's retention."""
        expired = await expire_downlinks(self._engine)
        if expired:
            log.info("%d downlinks expired", expired)
        await self._ingest.forget_batches(datetime.now(UTC) - BATCH_MEMORY)
        report = await self._retention.run()
        if report.unfinished:
            log.info("retention: more expired rows left for the next run")

    async def handle(self, body: bytes) -> None:
        """One broker message: returns (and is acked) once its batch is committed.

        Up to `prefetch` broker messages are handled at once; the writer merges
        all that are waiting into one transaction, since a transaction costs
        about as much for ten device messages as for a thousand.
        """
        try:
            batch = read_batch(body)
        except ValueError as err:
            log.error("dropping a pipeline body that is not a batch: %s", err)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((batch, done))
        self._wake.set()
        await done

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            waiting, self._waiting = self._waiting, []
            if waiting:
                await self._write_merged(waiting)

    async def _write_merged(self, waiting: list[tuple[Batch, asyncio.Future[None]]]) -> None:
        try:
            await self.store_batches([batch for batch, _ in waiting])
        except Exception:
            self.stats.store_errors += 1
            if len(waiting) == 1:
                _settle(waiting, sys.exc_info()[1])
                return
            log.warning("a merged write failed; writing its %d batches one by one", len(waiting))
            self.stats.split_writes += 1
            for one in waiting:
                await self._write_merged([one])
            return
        _settle(waiting, None)

    async def store_batches(self, batches: list[Batch]) -> None:
        """Stores the batches not stored before (a redelivery is skipped whole)."""
        ids = [batch.id for batch in batches if batch.id is not None]
        seen = await self._ingest.seen_batches(ids)
        if seen:
            log.info("skipping %d batches stored before (redelivered)", len(seen))
            self.stats.redelivered += len(seen)
            unannounced = await self._ingest.unannounced_batches(sorted(seen))
            await self._announce_again([b for b in batches if b.id in unannounced])
        fresh = [batch for batch in batches if batch.id is None or batch.id not in seen]
        records = [record for batch in fresh for record in batch.records]
        fresh_ids = [batch.id for batch in fresh if batch.id is not None]
        if await self.store(records, fresh_ids):
            await self._ingest.mark_announced(fresh_ids)
        self.stats.batches += len(fresh)

    async def store(self, records: list[Record], batch_ids: Sequence[uuid.UUID] = ()) -> bool:
        """Decodes and writes records in one transaction, then announces new messages.

        Returns whether the announcement went out (or there was none to make).
        """
        changes = Changes()
        for record in records:
            await self._add(changes, record)
        written = self._skip_fresh_last_seen(changes)
        stored = await self._ingest.apply(changes, batch_ids)
        self._seen_written.update(written)
        new = [row for row in changes.messages if row["id"] in stored]
        self.stats.transactions += 1
        self.stats.committed(new, datetime.now(UTC))
        announced = await self._announce(new)
        for codec in changes.codecs:
            if codec["kind"] == "decoder":
                self._start_redecode(codec["organization_id"], codec["hash"])
        await self._recheck_waiting(changes)
        return announced

    async def _recheck_waiting(self, changes: Changes) -> None:
        """Decodes what this batch left waiting if its decoder is stored by now.

        Another worker may have stored the decoder, and decoded what was
        waiting, while this one still knew the hash as missing or had not
        committed yet. Looking once more after the commit closes that gap:
        whichever commit came last, one of the two workers sees the other's.
        """
        waiting = {
            (row["organization_id"], row["codec_hash"])
            for row in changes.messages
            if row["decode_state"] == "undecoded"
        }
        for organization_id, codec_hash in await self._codecs.stored(waiting):
            self._start_redecode(organization_id, codec_hash)

    async def _add(self, changes: Changes, record: Record) -> None:
        kind = record.get("kind")
        try:
            if kind == "message":
                await self._add_message(changes, record)
            elif kind == "session":
                add_session(changes, record)
            elif kind == "downlink":
                changes.downlinks.append(downlink_row(record))
            elif kind == "log":
                row = log_row(record)
                changes.logs.append(row)
                if row["direction"] == "in":  # polls count as being seen too
                    mark_seen(changes, row["device_id"], row["at"])
            else:
                log.warning("ignoring a pipeline record of unknown kind %r", kind)
        except (AttributeError, KeyError, OverflowError, TypeError, ValueError) as err:
            log.error("ignoring a malformed %s record: %r", kind, err)

    async def _add_message(self, changes: Changes, record: Record) -> None:
        row = message_row(record)
        device_id, organization_id = row["device_id"], row["organization_id"]
        if row["direction"] == "up":
            mark_seen(changes, device_id, row["created_at"])
        kind = row["type"]
        if kind == "data" and row["direction"] == "up":
            await self._decode_into(row)
        elif kind in ("decoder", "encoder") and row["direction"] == "up":
            self._add_codec(changes, row)
        elif kind == "config" and row["direction"] == "up":
            body = row["body"] or {}
            changes.device_updates[device_id] |= {
                "config_hash": body.get("hash"),
                "config_lines": body.get("lines"),
            }
        elif kind == "shell" and row["direction"] == "up" and row["body"]:
            changes.shell_replies.append(
                {
                    "shell_id": bytes.fromhex(row["body"]["id"]),
                    "device_id": device_id,
                    "message_id": row["id"],
                    "at": row["created_at"],
                }
            )
        del organization_id
        changes.messages.append(row)

    async def _decode_into(self, row: Row) -> None:
        codec_hash = row["codec_hash"]
        codec = (
            None
            if codec_hash is None
            else await self._codecs.get(row["organization_id"], codec_hash)
        )
        if codec is None:
            row["decode_state"] = "undecoded"
            return
        try:
            row["body"] = without_nul(decode(codec, row["raw"][DATA_OFFSET:]))
            row["decode_state"] = "decoded"
        except CodecError as err:
            row["decode_state"] = "failed"
            row["decode_error"] = str(err)[:200]

    def _add_codec(self, changes: Changes, row: Row) -> None:
        """Stores an uploaded codec; one our rules cannot use is kept, with why.

        The device must not upload it again at every session start, and its
        data waits undecoded (and decodes once Nubes learns the codec's rules).
        """
        cbor = row["raw"][DATA_OFFSET:]
        organization_id, codec_hash = row["organization_id"], row["codec_hash"]
        note = None
        try:
            codec = codec_from_cbor(cbor)
            kind, name, document = codec.kind, codec.name, without_nul(codec.document)
            self._codecs.remember(organization_id, codec_hash, codec)
        except CodecError as err:
            log.warning(
                "device %s uploaded a codec Nubes cannot use: %s",
                row["device_id"],
                err,
                extra={"device_id": row["device_id"], "message_id": row.get("id")},
            )
            kind, name, note = row["type"], f"(unusable {row['type']} {codec_hash})", str(err)
            document = None
        changes.codecs.append(
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "hash": codec_hash,
                "kind": kind,
                "name": fit(t.codecs.c.name, without_nul(name)),
                "note": note,
                "document": document,
                "cbor": cbor,
                "source": "device",
                "created_at": row["created_at"],
                "updated_at": row["created_at"],
            }
        )
        changes.device_updates[row["device_id"]][f"{row['type']}_hash"] = codec_hash

    async def _announce(self, rows: list[Row]) -> bool:
        """Publishes `message.stored` for the rows; False when that failed."""
        if not rows:
            return True
        events = [stored_event(row) for row in rows]
        body = orjson.dumps({"v": 1, "messages": events}, default=str)
        await self._tell_live_streams(body)
        try:
            await self._broker.announce(MESSAGE_STORED, body)
        except Exception:
            # The batch is committed: failing it now would only make the broker
            # deliver it again. Its batch stays unannounced; a redelivery or
            # nothing (the event is then lost) follows.
            log.exception("message.stored not announced for %d messages", len(rows))
            self.stats.announce_errors += 1
            return False
        return True

    async def _tell_live_streams(self, body: bytes) -> None:
        """Best effort: a stream that misses a batch replays it from the database."""
        if self._live is None:
            return
        try:
            await self._live.publish(body)
        except Exception as err:
            log.warning("live streams not told of %d bytes of messages: %s", len(body), err)

    async def _announce_again(self, batches: list[Batch]) -> None:
        """Announces the messages of batches stored before, once more.

        The broker redelivers a batch whose commit succeeded but whose ack was
        lost; its events may never have gone out. Events are at least once:
        subscribers tell repeats by the message id.
        """
        message_ids = [
            uuid.UUID(str(record["id"]))
            for batch in batches
            for record in batch.records
            if record.get("kind") == "message" and record.get("id")
        ]
        if not message_ids:
            return
        m = t.messages
        query = sa.select(m).where(m.c.id.in_(message_ids)).order_by(m.c.created_at, m.c.id)
        async with self._engine.connect() as conn:
            rows = [dict(row) for row in (await conn.execute(query)).mappings()]
        await self._announce(rows)

    def _start_redecode(self, organization_id: uuid.UUID, codec_hash: str) -> None:
        task = asyncio.create_task(
            self._redecode(organization_id, codec_hash), name=f"redecode:{codec_hash}"
        )
        self._redecodes.add(task)
        task.add_done_callback(self._redecodes.discard)

    async def _redecode(self, organization_id: uuid.UUID, codec_hash: str) -> None:
        """Decodes the messages that waited for this codec, 500 at a time."""
        codec = await self._codecs.get(organization_id, codec_hash)
        if codec is None:
            return
        m = t.messages
        pending = (
            sa.select(m.c.id, m.c.raw)
            .where(
                m.c.organization_id == organization_id,
                m.c.codec_hash == codec_hash,
                m.c.decode_state == "undecoded",
            )
            .limit(500)
        )
        total = 0
        while True:
            async with self._engine.begin() as conn:
                rows = (await conn.execute(pending)).all()
                for message_id, raw in rows:
                    values = _decoded_values(codec, raw)
                    await conn.execute(sa.update(m).where(m.c.id == message_id).values(values))
            total += len(rows)
            if len(rows) < 500:
                break
        if total:
            log.info("decoded %d waiting messages with codec %s", total, codec_hash)


def _settle(waiting: list[tuple[Batch, asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, done in waiting:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def _decoded_values(codec: Any, raw: bytes) -> Row:
    try:
        return {"body": without_nul(decode(codec, raw[DATA_OFFSET:])), "decode_state": "decoded"}
    except CodecError as err:
        return {"decode_state": "failed", "decode_error": str(err)[:200]}
