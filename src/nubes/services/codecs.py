"""Codecs as users manage them: HARDWARIO v1's `/v1/codecs`, over our codec store.

One table holds the codecs devices upload (`source = device`, stored by the
pipeline worker) and the ones people write (`source = user`). Workers find
a codec by (organization, hash) and parse its `cbor` column, so a user's
YAML is stored exactly as a device built from that file would upload it:
the CBOR of the loaded document (`yaml_to_cbor`), its hash, the document as
JSON, and the YAML text itself. A codec without YAML (v1 allowed a name and
a note alone) has no hash until one is given; a codec whose `decoder_type`
is not `cbor` (v1 also knew protobuf and javascript) keeps its text
unparsed and gets no hash, since Nubes cannot run it.

Codecs uploaded by devices are read-only: the device is their authority,
and changing one would make the stored bytes disagree with the hash the
firmware sends. YAML anchors and aliases are refused: expanding them could
turn a small request into gigabytes (the "billion laughs").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
import yaml
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.codec import codec_from_yaml, codec_hash, hash_hex, to_json, yaml_to_cbor
from nubes.errors import CodecError, NotFound, StoreError
from nubes.services import audit
from nubes.store import tables as t

CODEC_SORT_FIELDS = ("name", "created_at", "updated_at")
_COMPILED = ("kind", "hash", "document", "cbor")


@dataclass(frozen=True, slots=True)
class Compiled:
    """What a codec YAML is stored as."""

    kind: str
    hash: str
    document: object
    cbor: bytes


def _refuse_aliases(text: str) -> None:
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise CodecError("codec YAML must not use aliases (*name)")
    except yaml.YAMLError as err:
        raise CodecError(f"invalid codec YAML: {err}") from err


def compile_yaml(text: str) -> Compiled:
    """Validates a codec YAML and computes what is stored; CodecError when invalid."""
    _refuse_aliases(text)
    codec = codec_from_yaml(text)
    document = to_json(codec.document)
    if b"\\u0000" in orjson.dumps(document):
        raise CodecError("codec YAML must not hold NUL characters")
    cbor = yaml_to_cbor(text)
    return Compiled(codec.kind, hash_hex(codec_hash(cbor)), document, cbor)


async def compile_yaml_async(text: str) -> Compiled:
    return await asyncio.to_thread(compile_yaml, text)


def codec_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """The API's codec: v1 fields plus organization, kind, hash and source."""
    decoder = row["yaml"]
    if decoder is None and row["document"] is not None:
        decoder = yaml.safe_dump(row["document"], sort_keys=False, allow_unicode=True)
    return {
        "id": row["id"],
        "organization_id": row["organization_id"],
        "name": row["name"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "note": row["note"],
        "decoder_type": row["decoder_type"] or "cbor",
        "decoder": decoder,
        "author_ids": list(row["author_ids"] or []),
        "kind": row["kind"],
        "hash": row["hash"],
        "source": row["source"],
    }


@dataclass(frozen=True, slots=True)
class CodecFilter:
    organizations: Sequence[uuid.UUID]
    organization_id: uuid.UUID | None = None
    kind: str | None = None
    hash: str | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        c = t.codecs
        where: list[sa.ColumnElement[bool]] = [c.c.organization_id.in_(list(self.organizations))]
        if self.organization_id is not None:
            where.append(c.c.organization_id == self.organization_id)
        if self.kind is not None:
            where.append(c.c.kind == self.kind)
        if self.hash is not None:
            where.append(c.c.hash == self.hash.lower())
        return where


async def list_codecs(
    engine: AsyncEngine,
    where: CodecFilter,
    *,
    sort_field: str = "name",
    descending: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[dict[str, Any]]]:
    c = t.codecs
    clauses = where.clauses()
    column = c.c[sort_field]
    query = (
        sa.select(c)
        .where(*clauses)
        .order_by(column.desc() if descending else column.asc(), c.c.id)
        .offset(offset)
        .limit(limit)
    )
    async with engine.connect() as conn:
        total = int(
            (await conn.execute(sa.select(sa.func.count()).select_from(c).where(*clauses))).scalar()
            or 0
        )
        rows = [codec_view(dict(row)) for row in (await conn.execute(query)).mappings()]
    return total, rows


async def find_codec(conn: AsyncConnection, codec_id: uuid.UUID) -> dict[str, Any] | None:
    row = (await conn.execute(sa.select(t.codecs).where(t.codecs.c.id == codec_id))).mappings()
    found = row.first()
    return None if found is None else codec_view(dict(found))


async def _insert(conn: AsyncConnection, values: dict[str, Any], actor: audit.Actor) -> None:
    await conn.execute(sa.insert(t.codecs).values(**values))
    details = {"name": values["name"], "kind": values["kind"], "hash": values["hash"]}
    await audit.record(
        conn, actor, values["organization_id"], "codec.create", "codec", values["id"], details
    )


async def create_codec(
    engine: AsyncEngine,
    organization_id: uuid.UUID,
    fields: Mapping[str, Any],
    compiled: Compiled | None,
    actor: audit.Actor,
) -> dict[str, Any]:
    """A user's codec; `fields` are name, note, decoder_type, yaml and kind."""
    now = datetime.now(UTC)
    values = {
        "id": uuid.uuid4(),
        "organization_id": organization_id,
        "source": "user",
        "author_ids": [str(actor.id)] if actor.type == "user" else [],
        "created_at": now,
        "updated_at": now,
        "hash": None,
        **fields,
    }
    if compiled is not None:
        values |= {name: getattr(compiled, name) for name in _COMPILED}
    try:
        async with engine.begin() as conn:
            await _insert(conn, values, actor)
            created = await find_codec(conn, values["id"])
    except IntegrityError as err:
        raise StoreError(f"the organization has a codec with hash {values['hash']}") from err
    assert created is not None
    return created


async def update_codec(
    engine: AsyncEngine,
    codec: Mapping[str, Any],
    changes: Mapping[str, Any],
    compiled: Compiled | None,
    actor: audit.Actor,
) -> dict[str, Any]:
    """Changes a user's codec; a new YAML (`compiled`) replaces hash and bytes."""
    values = {**changes, "updated_at": datetime.now(UTC)}
    if compiled is not None:
        values |= {name: getattr(compiled, name) for name in _COMPILED}
    c = t.codecs
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.update(c).where(c.c.id == codec["id"], c.c.source == "user").values(**values)
            )
            details = {"fields": sorted(changes), "hash": values.get("hash", codec["hash"])}
            await audit.record(
                conn, actor, codec["organization_id"], "codec.update", "codec", codec["id"], details
            )
            updated = await find_codec(conn, codec["id"])
    except IntegrityError as err:
        raise StoreError(f"the organization has a codec with hash {values.get('hash')}") from err
    if updated is None:
        raise NotFound("codec not found")
    return updated


async def delete_codec(engine: AsyncEngine, codec: Mapping[str, Any], actor: audit.Actor) -> None:
    c = t.codecs
    async with engine.begin() as conn:
        done = await conn.execute(sa.delete(c).where(c.c.id == codec["id"], c.c.source == "user"))
        if done.rowcount == 0:
            raise NotFound("codec not found")
        details = {"name": codec["name"], "hash": codec["hash"]}
        await audit.record(
            conn, actor, codec["organization_id"], "codec.delete", "codec", codec["id"], details
        )
