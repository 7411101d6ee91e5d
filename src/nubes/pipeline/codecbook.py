"""The worker's view of codecs: parsed once, kept in memory.

Decoding a data message needs the decoder of its hash within the device's
organization. Parsing a codec document costs far more than decoding with it,
so parsed codecs are kept. A hash that is not known yet is remembered as
missing for a few seconds: a device sending data whose codec never arrived
must not cost one database query per message.
"""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.codec import Codec, codec_from_cbor
from nubes.errors import CodecError
from nubes.store import tables as t

Key = tuple[uuid.UUID, str]


class CodecBook:
    """Parsed codecs by (organization, hash), with a short negative cache."""

    def __init__(self, engine: AsyncEngine, miss_seconds: float = 5.0, size: int = 4096) -> None:
        self._engine = engine
        self._miss_seconds = miss_seconds
        self._size = size
        self._codecs: dict[Key, Codec] = {}
        self._misses: dict[Key, float] = {}
        # Stored codecs our rules cannot use: their bytes never change (the
        # hash names them), so asking again before a restart is wasted.
        self._unusable: set[Key] = set()

    def remember(self, organization_id: uuid.UUID, codec_hash: str, codec: Codec) -> None:
        if len(self._codecs) >= self._size:
            self._codecs.pop(next(iter(self._codecs)))
        self._codecs[(organization_id, codec_hash)] = codec
        self._misses.pop((organization_id, codec_hash), None)

    async def get(self, organization_id: uuid.UUID, codec_hash: str) -> Codec | None:
        key = (organization_id, codec_hash)
        codec = self._codecs.get(key)
        if codec is not None:
            return codec
        if key in self._unusable or self._misses.get(key, 0.0) > time.monotonic():
            return None
        codec = await self._load(key)
        if codec is None:
            self._misses[key] = time.monotonic() + self._miss_seconds
        else:
            self.remember(organization_id, codec_hash, codec)
        return codec

    async def stored(self, keys: set[Key]) -> set[Key]:
        """Which of `keys` the database holds now, whatever this book remembers.

        Codecs known to be unusable are left out: nothing waits for them.
        """
        keys = keys - self._unusable
        if not keys:
            return set()
        c = t.codecs
        query = sa.select(c.c.organization_id, c.c.hash).where(
            sa.tuple_(c.c.organization_id, c.c.hash).in_(sorted(keys))
        )
        async with self._engine.connect() as conn:
            found = {(uuid.UUID(str(org)), str(hash_)) for org, hash_ in await conn.execute(query)}
        for key in found:
            self._misses.pop(key, None)
        return found

    async def _load(self, key: Key) -> Codec | None:
        query = sa.select(t.codecs.c.cbor).where(
            t.codecs.c.organization_id == key[0], t.codecs.c.hash == key[1]
        )
        async with self._engine.connect() as conn:
            cbor = (await conn.execute(query)).scalar_one_or_none()
        if cbor is None:
            return None
        try:
            return codec_from_cbor(cbor)
        except CodecError:
            self._unusable.add(key)
            return None
