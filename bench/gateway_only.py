"""The gateway alone, for the benchmark: real UDP endpoint, real FLAP, no storage.

Devices come from a SQLite database as in production (the directory loads
them); completed uplinks go to the in-process broker, whose only consumer
drops them. What is measured is therefore the gateway's own work per
datagram: base64, MAC, transfer state machine, translation, batching, the
communication-log records and the answer. With `--redis-url` the link
snapshots of several gateways (nubes.gateway.state) are saved to that Redis
too, to measure what sharing the state costs.
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop

from nubes.config import Settings
from nubes.gateway.directory import Directory
from nubes.gateway.endpoint import open_mac_endpoint
from nubes.gateway.publisher import Publisher
from nubes.gateway.service import Gateway
from nubes.gateway.sessions import SessionIds
from nubes.gateway.state import LocalState, RedisState, SharedState
from nubes.pipeline.broker import UPLINK, MemoryBroker
from nubes.pipeline.cache import MemoryCache
from nubes.store.database import Database


async def discard(body: bytes) -> None:
    return None


async def main(database_url: str, port: int, redis_url: str | None) -> None:
    settings = Settings()
    database = Database(database_url)
    broker = MemoryBroker()
    await broker.consume(UPLINK, "store", discard, prefetch=4)
    directory = Directory(database.engine, settings.device_refresh_seconds)
    await directory.start()
    publisher = Publisher(
        broker,
        batch_size=settings.publish_batch_size,
        linger_seconds=settings.publish_linger_ms / 1000,
    )
    session_ids = SessionIds(MemoryCache(), database.engine)
    await session_ids.start()
    state: SharedState = LocalState()
    if redis_url:
        state = RedisState(redis_url, "benchstate", ttl_seconds=300)
    gateway = Gateway(
        engine=database.engine,
        directory=directory,
        publisher=publisher,
        session_ids=session_ids,
        publish_timeout=settings.publish_timeout_seconds,
        idle_seconds=settings.device_idle_seconds,
        max_links=settings.max_device_links,
        state=state,
    )
    await state.start(gateway.on_takeover, gateway.on_takeovers_missed)
    await open_mac_endpoint(gateway, "127.0.0.1", port, base64=True)
    print(f"ready {len(directory)}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", help="share link state through this Redis")
    args = parser.parse_args()
    uvloop.run(main(args.database_url, args.port, args.redis_url))
