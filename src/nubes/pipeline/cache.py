"""The cache port: small shared state between processes.

Nubes keeps little in the cache: monotonic counters (session ids must be
unique across gateway processes) and short-lived flags. The embedded adapter
keeps them in process memory, which is right for one `nubes serve`; the Redis
adapter shares them between any number of processes. Only `bootstrap`
chooses between them.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis

from nubes.errors import BrokerError

_RAISE_FLOOR = """
local v = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if v < floor then
  redis.call('SET', KEYS[1], floor)
  v = floor
end
return v
"""


class Cache(Protocol):
    """Shared counters and flags."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def next_id(self, name: str, at_least: int) -> int:
        """The next value of counter `name`, never below `at_least`."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...


class MemoryCache:
    """In-process cache for the embedded single-node mode and unit tests."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._values: dict[str, tuple[bytes, float | None]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def next_id(self, name: str, at_least: int) -> int:
        value = max(self._counters.get(name, 0) + 1, at_least)
        self._counters[name] = value
        return value

    async def get(self, key: str) -> bytes | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, deadline = entry
        if deadline is not None and deadline < time.monotonic():
            del self._values[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        deadline = None if ttl_seconds is None else time.monotonic() + ttl_seconds
        self._values[key] = (value, deadline)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)


class RedisCache:
    """Redis adapter: counters with INCR, values with SET/GET and expiry."""

    def __init__(self, url: str, prefix: str) -> None:
        self._client: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=5.0, socket_connect_timeout=5.0
        )
        self._prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def start(self) -> None:
        try:
            await self._client.ping()
        except aioredis.RedisError as err:
            raise BrokerError(f"Redis is not reachable: {err}") from err

    async def close(self) -> None:
        await self._client.aclose()

    async def next_id(self, name: str, at_least: int) -> int:
        script = self._client.register_script(_RAISE_FLOOR)
        value = await script(keys=[self._key(f"counter:{name}")], args=[at_least])
        return int(value)

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self._key(key))
        if value is None:
            return None
        return value if isinstance(value, bytes) else str(value).encode()

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        px = None if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        await self._client.set(self._key(key), value, px=px)

    async def delete(self, key: str) -> None:
        await self._client.delete(self._key(key))
