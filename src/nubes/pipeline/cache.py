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

# DECR a window counter that still exists (never creates one without expiry).
_UNCOUNT = """
if redis.call('EXISTS', KEYS[1]) == 1 and tonumber(redis.call('GET', KEYS[1])) > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""

# INCR a window counter; the first increment starts the window's expiry.
_COUNT_IN_WINDOW = """
local v = redis.call('INCR', KEYS[1])
if v == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {v, ttl}
"""


class Cache(Protocol):
    """Shared counters and flags."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raises BrokerError unless the cache answers (readiness probes)."""
        ...

    async def next_id(self, name: str, at_least: int) -> int:
        """The next value of counter `name`, never below `at_least`."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def count(self, key: str, window_seconds: float) -> tuple[int, float]:
        """Adds one to a counter that expires `window_seconds` after its first count.

        Returns the count and the seconds left in the window (rate limits).
        """
        ...

    async def peek_count(self, key: str) -> tuple[int, float]:
        """The count and seconds left of a window counter, without counting."""
        ...

    async def uncount(self, key: str) -> None:
        """Takes back one count of a live window (an attempt that succeeded)."""
        ...


class MemoryCache:
    """In-process cache for the embedded single-node mode and unit tests."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._values: dict[str, tuple[bytes, float | None]] = {}
        # Rate-limit windows: count and monotonic deadline, bounded in number.
        self._windows: dict[str, tuple[int, float]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
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
        self._windows.pop(key, None)

    async def count(self, key: str, window_seconds: float) -> tuple[int, float]:
        now = time.monotonic()
        value, deadline = self._windows.get(key, (0, 0.0))
        if deadline <= now:
            value, deadline = 0, now + window_seconds
        self._windows[key] = (value + 1, deadline)
        if len(self._windows) > 100_000:
            self._forget_ended_windows(now)
        return value + 1, deadline - now

    async def peek_count(self, key: str) -> tuple[int, float]:
        now = time.monotonic()
        value, deadline = self._windows.get(key, (0, 0.0))
        if deadline <= now:
            return 0, 0.0
        return value, deadline - now

    async def uncount(self, key: str) -> None:
        value, deadline = self._windows.get(key, (0, 0.0))
        if value > 0 and deadline > time.monotonic():
            self._windows[key] = (value - 1, deadline)

    def _forget_ended_windows(self, now: float) -> None:
        for key in [k for k, (_, deadline) in self._windows.items() if deadline <= now]:
            del self._windows[key]


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

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except aioredis.RedisError as err:
            raise BrokerError(f"Redis does not answer: {err}") from err

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

    async def count(self, key: str, window_seconds: float) -> tuple[int, float]:
        script = self._client.register_script(_COUNT_IN_WINDOW)
        window_ms = max(1, int(window_seconds * 1000))
        value, ttl_ms = await script(keys=[self._key(key)], args=[window_ms])
        return int(value), int(ttl_ms) / 1000

    async def peek_count(self, key: str) -> tuple[int, float]:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(self._key(key))
            pipe.pttl(self._key(key))
            value, ttl_ms = await pipe.execute()
        if value is None or int(ttl_ms) <= 0:
            return 0, 0.0
        return int(value), int(ttl_ms) / 1000

    async def uncount(self, key: str) -> None:
        script = self._client.register_script(_UNCOUNT)
        await script(keys=[self._key(key)])
