"""Applies pipeline batches to the database: the worker's write path.

One batch, one transaction, a handful of statements, whatever the number of
records: that is what keeps PostgreSQL at tens of thousands of rows/s
instead of the 2k rows/s of one INSERT per row (messages and the log go in
with COPY there, see `bulk`; SQLite takes executemany). Messages are inserted with "on conflict
do nothing", so a batch the broker delivers twice stores each message once
(its id and time come again with it); the ids that were really inserted come
back, and only those are announced as `message.stored`. The conflict names
no key because the key differs: `id` in a plain table, `(id, created_at)`
once `messages` is partitioned (`partitions`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.store import bulk
from nubes.store import tables as t

Row = dict[str, Any]

DEVICE_ATTRIBUTES = (
    "vendor",
    "product",
    "hw_variant",
    "hw_revision",
    "fw_bundle",
    "fw_name",
    "fw_version",
    "modem_fw",
    "imei",
    "imsi",
    "iccid",
    "ble_passkey",
)


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def upsert(dialect: str, table: sa.Table) -> Any:
    """An INSERT that knows ON CONFLICT, for the running backend."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


@dataclass(slots=True)
class Changes:
    """What one batch does to the database, gathered before the transaction."""

    sessions: list[Row] = field(default_factory=list)
    messages: list[Row] = field(default_factory=list)
    codecs: list[Row] = field(default_factory=list)
    device_updates: dict[uuid.UUID, Row] = field(default_factory=lambda: defaultdict(dict))
    downlinks: list[Row] = field(default_factory=list)
    shell_replies: list[Row] = field(default_factory=list)
    # A new session of a device ends its earlier ones: {device_id, id, at}.
    ended_sessions: list[Row] = field(default_factory=list)
    logs: list[Row] = field(default_factory=list)


class Ingest:
    """Writes `Changes` in one transaction; returns the newly stored message ids."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    async def seen_batches(self, batch_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these pipeline batches are stored already."""
        if not batch_ids:
            return set()
        table = t.pipeline_batches
        async with self._engine.connect() as conn:
            rows = await conn.execute(sa.select(table.c.id).where(table.c.id.in_(batch_ids)))
            return {uuid.UUID(str(row[0])) for row in rows}

    async def unannounced_batches(self, batch_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these stored batches have not had their events announced."""
        if not batch_ids:
            return set()
        table = t.pipeline_batches
        query = sa.select(table.c.id).where(
            table.c.id.in_(batch_ids), table.c.announced_at.is_(None)
        )
        async with self._engine.connect() as conn:
            return {uuid.UUID(str(row[0])) for row in await conn.execute(query)}

    async def mark_announced(self, batch_ids: Sequence[uuid.UUID]) -> None:
        if not batch_ids:
            return
        table = t.pipeline_batches
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.update(table)
                .where(table.c.id.in_(batch_ids))
                .values(announced_at=datetime.now(UTC))
            )

    async def forget_batches(self, before: datetime) -> int:
        """Deletes the memory of batches stored before `before` (redeliveries are long over)."""
        table = t.pipeline_batches
        async with self._engine.begin() as conn:
            result = await conn.execute(sa.delete(table).where(table.c.stored_at < before))
        return int(result.rowcount or 0)

    async def apply(self, changes: Changes, batch_ids: Sequence[uuid.UUID] = ()) -> set[uuid.UUID]:
        """Writes everything in one transaction, with the ids of the batches it came from.

        A batch id stored meanwhile by another worker makes the insert fail and
        the whole transaction roll back; the broker then redelivers, and the
        batch is found in `seen_batches`.
        """
        async with self._engine.begin() as conn:
            if batch_ids:
                now = datetime.now(UTC)
                await conn.execute(
                    sa.insert(t.pipeline_batches),
                    [{"id": batch_id, "stored_at": now} for batch_id in batch_ids],
                )
            await self._sessions(conn, changes.sessions)
            await self._end_sessions(conn, changes.ended_sessions)
            stored = await self._messages(conn, changes.messages)
            await self._codecs(conn, changes.codecs)
            await self._downlinks(conn, changes.downlinks)
            await self._shell_replies(conn, changes.shell_replies)
            if changes.logs and self._dialect == "postgresql":
                await bulk.copy_log(conn, changes.logs)
            elif changes.logs:
                await conn.execute(sa.insert(t.session_log), changes.logs)
            new_messages = [row for row in changes.messages if row["id"] in stored]
            await self._session_counters(conn, session_counters(changes.logs, new_messages))
            await self._devices(conn, changes.device_updates)
        return stored

    async def _sessions(self, conn: AsyncConnection, rows: Sequence[Row]) -> None:
        if not rows:
            return
        stmt = upsert(self._dialect, t.sessions)
        keep = (
            "device_id",
            "envelope",
            "remote_address",
            "remote_port",
            "started_at",
            "attributes",
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"], set_={name: stmt.excluded[name] for name in keep}
        )
        await conn.execute(stmt, list(rows))

    async def _end_sessions(self, conn: AsyncConnection, rows: Sequence[Row]) -> None:
        if not rows:
            return
        table = t.sessions
        stmt = (
            sa.update(table)
            .where(
                table.c.device_id == sa.bindparam("b_device"),
                table.c.id != sa.bindparam("b_id"),
                table.c.ended_at.is_(None),
                table.c.started_at <= sa.bindparam("b_at"),
            )
            .values(ended_at=sa.bindparam("b_at"), end_reason="new session")
        )
        params = [{"b_device": r["device_id"], "b_id": r["id"], "b_at": r["at"]} for r in rows]
        await conn.execute(stmt, sorted(params, key=lambda p: (str(p["b_device"]), p["b_at"])))

    async def _messages(self, conn: AsyncConnection, rows: Sequence[Row]) -> set[uuid.UUID]:
        if not rows:
            return set()
        if self._dialect == "postgresql":
            return await bulk.copy_messages(conn, rows)
        stmt = upsert(self._dialect, t.messages).on_conflict_do_nothing()
        result = await conn.execute(stmt.returning(t.messages.c.id), list(rows))
        return {row[0] for row in result}

    async def _codecs(self, conn: AsyncConnection, rows: Sequence[Row]) -> None:
        if rows:
            stmt = upsert(self._dialect, t.codecs).on_conflict_do_nothing(
                index_elements=["organization_id", "hash"]
            )
            await conn.execute(stmt, list(rows))

    async def _downlinks(self, conn: AsyncConnection, rows: Sequence[Row]) -> None:
        for row in rows:
            values: Row = {"updated_at": row["at"]}
            table = t.downlinks
            if row["state"] == "sent":
                values |= {
                    "sent_at": row["at"],
                    "attempts": sa.func.max(row["attempt"], table.c.attempts)
                    if self._dialect == "sqlite"
                    else sa.func.greatest(row["attempt"], table.c.attempts),
                    "state": sa.case((table.c.state == "pending", "sent"), else_=table.c.state),
                }
            elif row["state"] == "delivered":
                values |= {"delivered_at": row["at"], "state": "delivered"}
            await conn.execute(sa.update(table).where(table.c.id == row["id"]).values(values))

    async def _shell_replies(self, conn: AsyncConnection, rows: Sequence[Row]) -> None:
        table = t.downlinks
        for row in rows:
            await conn.execute(
                sa.update(table)
                .where(table.c.shell_id == row["shell_id"], table.c.device_id == row["device_id"])
                .values(reply_message_id=row["message_id"], updated_at=row["at"])
            )

    async def _session_counters(
        self, conn: AsyncConnection, counters: dict[int, dict[str, Any]]
    ) -> None:
        """Adds a batch's packets, bytes and messages to its sessions, one statement."""
        if not counters:
            return
        table = t.sessions
        stmt = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("b_id"))
            .values(
                {name: table.c[name] + sa.bindparam(f"b_{name}") for name in COUNTERS}
                | {"last_activity_at": sa.bindparam("b_last")}
            )
        )
        params = [
            {"b_id": session_id, "b_last": values["last"]}
            | {f"b_{name}": values[name] for name in COUNTERS}
            for session_id, values in sorted(counters.items())
        ]
        await conn.execute(stmt, params)

    async def _devices(self, conn: AsyncConnection, updates: dict[uuid.UUID, Row]) -> None:
        """One executemany per set of changed columns (mostly just `last_seen_at`).

        Rows go in id order, so that two workers updating the same devices
        take their row locks in the same order and cannot deadlock.
        """
        table = t.devices
        by_columns: dict[tuple[str, ...], list[Row]] = defaultdict(list)
        for device_id, values in sorted(updates.items()):
            if values:
                columns = tuple(sorted(values))
                by_columns[columns].append(
                    {"b_id": device_id} | {f"b_{name}": values[name] for name in columns}
                )
        for columns, params in by_columns.items():
            stmt = (
                sa.update(table)
                .where(table.c.id == sa.bindparam("b_id"))
                .values({name: sa.bindparam(f"b_{name}") for name in columns})
            )
            await conn.execute(stmt, params)


COUNTERS = ("packets_in", "packets_out", "bytes_in", "bytes_out", "messages_in", "messages_out")


def session_counters(logs: Iterable[Row], messages: Iterable[Row]) -> dict[int, dict[str, Any]]:
    """Per session: packets and bytes in and out, new messages, last activity."""
    counters: dict[int, dict[str, Any]] = {}

    def entry(session_id: int, at: datetime) -> dict[str, Any]:
        found = counters.get(session_id)
        if found is None:
            found = counters[session_id] = dict.fromkeys(COUNTERS, 0) | {"last": at}
        found["last"] = max(found["last"], at)
        return found

    for row in logs:
        if row["session_id"] is not None:
            counts = entry(row["session_id"], row["at"])
            direction = "in" if row["direction"] == "in" else "out"
            counts[f"packets_{direction}"] += 1
            counts[f"bytes_{direction}"] += row["size"]
    for row in messages:
        if row["session_id"] is not None:
            counts = entry(row["session_id"], row["created_at"])
            counts["messages_in" if row["direction"] == "up" else "messages_out"] += 1
    return counters
