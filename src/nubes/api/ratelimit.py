"""Rate limits for failed sign-ins and failed credentials.

Failures are counted per source address and per account (email) in the
shared cache, so every API process sees the same counts. Once a counter
passes its limit, every request from that source (or for that account) is
answered 429 with `Retry-After` until the window ends, even with valid
credentials: a guesser learns nothing from a lucky guess while blocked.

Password and TOTP checks are slow (argon2), so a burst of parallel guesses
would all pass a check made before them: `attempt` counts first and
`succeeded` takes the count back, so at most the limit is ever in flight.
API keys and tokens are checked with one indexed lookup of a 256-bit
secret: they are only checked before and counted after (`check`, `failed`),
which costs no write per request.
"""

from __future__ import annotations

import math

from nubes.api.errors import ApiError
from nubes.pipeline.cache import Cache

WINDOW_SECONDS = 300.0
SOURCE_LIMIT = 20  # failures per source address per window
ACCOUNT_LIMIT = 10  # failures per account per window


def _keys(source: str, account: str | None) -> list[tuple[str, int]]:
    keys = [(f"ratelimit:source:{source}", SOURCE_LIMIT)]
    if account:
        keys.append((f"ratelimit:account:{account.strip().lower()[:254]}", ACCOUNT_LIMIT))
    return keys


def _limited(retry_after: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after))
    return ApiError(
        429,
        "rate_limited",
        f"too many failed attempts; retry after {seconds} s",
        {"retry_after": seconds},
        headers={"Retry-After": str(seconds)},
    )


async def check(cache: Cache, source: str, account: str | None = None) -> None:
    """Raises 429 when the source or the account is blocked."""
    for key, limit in _keys(source, account):
        count, left = await cache.peek_count(key)
        if count >= limit:
            raise _limited(left)


async def failed(cache: Cache, source: str, account: str | None = None) -> None:
    """Counts one failure."""
    for key, _limit in _keys(source, account):
        await cache.count(key, WINDOW_SECONDS)


async def attempt(cache: Cache, source: str, account: str | None = None) -> None:
    """Counts an attempt before it is checked; 429 when that passes a limit."""
    for key, limit in _keys(source, account):
        count, left = await cache.count(key, WINDOW_SECONDS)
        if count > limit:
            raise _limited(left)


async def succeeded(cache: Cache, source: str, account: str | None = None) -> None:
    """Takes back the count of an attempt that turned out right."""
    for key, _limit in _keys(source, account):
        await cache.uncount(key)
