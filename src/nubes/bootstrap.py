"""Wires Nubes together: the only place that chooses adapters.

`build_adapters` turns the three URLs of the settings into a database, a
broker, a cache and the live fan-out (embedded or production); `Runtime`
starts the parts a command asks for (gateway, worker, callback dispatcher,
API) on those adapters and stops them in reverse order. The CLI calls
nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import uvicorn
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from nubes import __version__
from nubes import metrics as prom
from nubes.callbacks import metrics as dispatcher_metrics
from nubes.callbacks.dispatcher import Dispatcher
from nubes.callbacks.sender import Sender
from nubes.config import Settings
from nubes.dtls import DtlsServer
from nubes.errors import ConfigError
from nubes.gateway import metrics as gateway_metrics
from nubes.gateway.directory import Directory
from nubes.gateway.dtls_endpoint import DtlsEndpoint, open_dtls_endpoint
from nubes.gateway.endpoint import open_mac_endpoint
from nubes.gateway.publisher import Publisher
from nubes.gateway.service import Gateway
from nubes.gateway.sessions import SessionIds
from nubes.gateway.state import LocalState, RedisState, SharedState
from nubes.ops import Check, OpsServer
from nubes.pipeline import metrics as worker_metrics
from nubes.pipeline.broker import UPLINK, Broker, MemoryBroker
from nubes.pipeline.cache import Cache, MemoryCache, RedisCache
from nubes.pipeline.live import Live, MemoryLive, RedisLive
from nubes.pipeline.rabbitmq import RabbitBroker
from nubes.pipeline.worker import STORE_QUEUE, Worker
from nubes.store.database import Database
from nubes.store.retention import Retention

if TYPE_CHECKING:  # the API's modules load only in processes that serve it
    from nubes.api.metrics import HttpStats

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 60.0


@dataclass(slots=True)
class Adapters:
    database: Database
    broker: Broker
    cache: Cache
    live: Live

    @property
    def embedded_broker(self) -> bool:
        return isinstance(self.broker, MemoryBroker)


def build_broker(settings: Settings) -> Broker:
    url = settings.broker_url
    if url == "memory://":
        return MemoryBroker()
    if url.startswith(("amqp://", "amqps://")):
        return RabbitBroker(url, settings.broker_prefix, queue_type=settings.broker_queue_type)
    raise ConfigError(f"NUBES_BROKER_URL must be memory:// or amqp(s)://, not {url!r}")


def build_cache(settings: Settings) -> Cache:
    url = settings.redis_url
    if url == "memory://":
        return MemoryCache()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(url, settings.cache_prefix)
    raise ConfigError(f"NUBES_REDIS_URL must be memory:// or redis://, not {url!r}")


def build_gateway_state(settings: Settings) -> SharedState:
    """Link snapshots in Redis for several gateways (NUBES_GATEWAY_SHARED_STATE)."""
    if not settings.gateway_shared_state:
        return LocalState()
    if settings.redis_url == "memory://":
        raise ConfigError("NUBES_GATEWAY_SHARED_STATE needs Redis (NUBES_REDIS_URL=redis://…)")
    return RedisState(settings.redis_url, settings.cache_prefix, settings.device_idle_seconds)


def build_live(settings: Settings) -> Live:
    """Redis pub/sub when there is a Redis (processes apart), else in-process."""
    url = settings.redis_url
    if url == "memory://":
        return MemoryLive()
    return RedisLive(url, settings.cache_prefix)


def build_adapters(settings: Settings) -> Adapters:
    return Adapters(
        Database(settings.database_url),
        build_broker(settings),
        build_cache(settings),
        build_live(settings),
    )


@dataclass
class Runtime:
    """The running parts of one process, stopped in reverse order of start."""

    settings: Settings
    adapters: Adapters
    gateway: Gateway | None = None
    worker: Worker | None = None
    dispatcher: Dispatcher | None = None
    dtls: DtlsEndpoint | None = None
    # The UDP ports actually bound, by envelope (a setting of 0 picks a free one).
    ports: dict[str, int] = field(default_factory=dict)
    # The TCP port of the HTTP API, once it listens.
    http_port: int | None = None
    # The operations port (/health, /ready, /metrics), when NUBES_OPS_PORT asks for one.
    ops: OpsServer | None = None
    # What the API's middleware counts, once the API runs.
    http_stats: HttpStats | None = None
    _stops: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(
        self, *, gateway: bool, worker: bool, api: bool = False, dispatcher: bool = False
    ) -> None:
        if self.adapters.embedded_broker and (gateway != worker or (dispatcher and not worker)):
            raise ConfigError(
                "the embedded broker (NUBES_BROKER_URL=memory://) joins gateway, worker and "
                "callback dispatcher in one process: use `nubes serve`, or point "
                "NUBES_BROKER_URL at RabbitMQ"
            )
        if api and not worker and isinstance(self.adapters.live, MemoryLive):
            log.warning(
                "`nubes api` without Redis (NUBES_REDIS_URL=memory://): live streams "
                "(/v1/messages/stream) only replay stored messages, nothing arrives live"
            )
        self._stops.append(self.adapters.database.dispose)
        await self.adapters.cache.start()
        self._stops.append(self.adapters.cache.close)
        await self.adapters.live.start(listen=api)
        self._stops.append(self.adapters.live.close)
        if gateway or worker or dispatcher:
            await self.adapters.broker.start()
            self._stops.append(self.adapters.broker.close)
        if dispatcher:
            # Before the worker: in-process, its events reach only bound consumers.
            await self._start_dispatcher()
        if worker:
            await self._start_worker()
        if gateway:
            await self._start_gateway()
        if api:
            await self._start_api()
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        if self.settings.ops_port:
            name = process_name(gateway, worker, api, dispatcher)
            await self._start_ops(name, uses_broker=gateway or worker or dispatcher)

    async def _start_ops(self, process: str, *, uses_broker: bool) -> None:
        checks: dict[str, Check] = {"database": self.adapters.database.ping}
        if uses_broker:
            checks["broker"] = self.adapters.broker.ping
        checks["cache"] = self.adapters.cache.ping
        registry = self.metrics_registry(process)
        self.ops = OpsServer(process, checks, lambda: prom.exposition(registry))
        await self.ops.start(self.settings.bind, self.settings.ops_port)
        self._stops.append(self.ops.close)
        log.info(
            "ops: /health, /ready and /metrics on %s:%d/tcp", self.settings.bind, self.ops.port
        )

    def metrics_registry(self, process: str) -> CollectorRegistry:
        """A registry of this runtime's own: the parts it started, read at each scrape."""
        registry = prom.registry(process)
        gateway, dtls, worker = self.gateway, self.dtls, self.worker
        dispatcher, http_stats = self.dispatcher, self.http_stats
        sources: list[Callable[[], Iterable[Metric]]] = []
        if gateway is not None:
            server = None if dtls is None else dtls.server
            sources.append(lambda: gateway_metrics.families(gateway, server))
        if worker is not None:
            sources.append(lambda: worker_metrics.families(worker.stats))
        if dispatcher is not None:
            sources.append(lambda: dispatcher_metrics.families(dispatcher))
        if http_stats is not None:
            from nubes.api import metrics as api_metrics

            sources.append(lambda: api_metrics.families(http_stats))
        for source in sources:
            registry.register(prom.Families(source))
        return registry

    async def _start_api(self) -> None:
        from nubes.api.app import create_app
        from nubes.api.context import ApiContext
        from nubes.api.metrics import HttpStats
        from nubes.services.auth import BOOTSTRAP_EMAIL, bootstrap_admin

        settings, adapters = self.settings, self.adapters
        password = None if settings.production else await bootstrap_admin(adapters.database.engine)
        if password is not None:
            # Printed once, on the first start of an empty database only.
            log.warning(
                "first start: created user %s with password %s (organization and group "
                "`default`); sign in and change it",
                BOOTSTRAP_EMAIL,
                password,
            )
        ctx = ApiContext(settings, adapters.database.engine, adapters.cache, adapters.live)
        # Counted only where /metrics can read it: 2 µs a request saved otherwise.
        self.http_stats = HttpStats() if settings.ops_port else None
        config = uvicorn.Config(
            create_app(ctx, self.http_stats),
            host=settings.bind,
            port=settings.http_port,
            loop="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=True,
            forwarded_allow_ips=settings.trusted_proxies,
            timeout_graceful_shutdown=5,
        )
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(), name="api")
        while not server.started:
            if task.done():
                with contextlib.suppress(BaseException):
                    task.result()  # uvicorn exits (SystemExit) when it cannot bind
                raise ConfigError(
                    f"the API could not listen on {settings.bind}:{settings.http_port} "
                    "(in use? see NUBES_HTTP_PORT)"
                )
            await asyncio.sleep(0.01)
        self.http_port = server.servers[0].sockets[0].getsockname()[1]
        log.info("API listening on http://%s:%d", settings.bind, self.http_port)

        async def stop() -> None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)

        self._stops.append(stop)

    async def _start_worker(self) -> None:
        self.worker = Worker(
            self.adapters.database.engine,
            self.adapters.broker,
            self.settings.worker_prefetch,
            live=self.adapters.live,
            retention=Retention(
                self.adapters.database.engine, batch_size=self.settings.retention_batch_size
            ),
        )
        await self.worker.start()
        self._stops.append(self.worker.close)

    async def _start_dispatcher(self) -> None:
        settings = self.settings
        sender = Sender(
            allow_private=settings.callback_allow_private,
            max_connections=settings.dispatcher_concurrency,
            user_agent=f"nubes/{__version__}",
        )
        self._stops.append(sender.close)
        self.dispatcher = Dispatcher(
            self.adapters.database.engine, self.adapters.broker, settings, sender
        )
        await self.dispatcher.start()
        self._stops.append(self.dispatcher.close)

    async def _start_gateway(self) -> None:
        settings, adapters = self.settings, self.adapters
        engine = adapters.database.engine
        await adapters.broker.declare(UPLINK, STORE_QUEUE)
        directory = Directory(engine, settings.device_refresh_seconds)
        await directory.start()
        self._stops.append(directory.close)
        publisher = Publisher(
            adapters.broker,
            batch_size=settings.publish_batch_size,
            linger_seconds=settings.publish_linger_ms / 1000,
            timeout_seconds=settings.publish_timeout_seconds,
        )
        self._stops.append(publisher.close)
        session_ids = SessionIds(adapters.cache, engine)
        await session_ids.start()
        state = build_gateway_state(settings)
        self._stops.append(state.close)
        self.gateway = Gateway(
            engine=engine,
            directory=directory,
            publisher=publisher,
            session_ids=session_ids,
            publish_timeout=settings.publish_timeout_seconds,
            idle_seconds=settings.device_idle_seconds,
            max_links=settings.max_device_links,
            state=state,
        )
        await state.start(self.gateway.on_takeover, self.gateway.on_takeovers_missed)
        self._stops.append(self.gateway.close)
        for port, base64 in ((settings.flap_raw_port, False), (settings.flap_base64_port, True)):
            transport = await open_mac_endpoint(self.gateway, settings.bind, port, base64=base64)
            self._stops.append(_closer(transport))
            port = transport.get_extra_info("sockname")[1]
            self.ports["base64" if base64 else "raw"] = port
            log.info(
                "FLAP %s envelope listening on %s:%d/udp",
                "base64" if base64 else "raw",
                settings.bind,
                port,
            )
        await self._open_dtls(directory)
        log.info("gateway knows %d devices", len(directory))

    async def _open_dtls(self, directory: Directory) -> None:
        settings = self.settings
        assert self.gateway is not None
        server = DtlsServer(
            directory.psks,
            suites=tuple(settings.dtls_suites.split(",")),
            handshake_timeout=settings.dtls_handshake_timeout_seconds,
            idle_timeout=settings.dtls_idle_seconds,
            max_handshakes=settings.dtls_max_handshakes,
        )
        transport, self.dtls = await open_dtls_endpoint(
            self.gateway, server, settings.bind, settings.dtls_port
        )
        self._stops.append(_closer(transport))
        self.ports["dtls"] = transport.get_extra_info("sockname")[1]
        log.info("FLAP DTLS envelope listening on %s:%d/udp", settings.bind, self.ports["dtls"])

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                await self._tidy()
            except Exception:
                log.exception("housekeeping failed")

    async def _tidy(self) -> None:
        if self.gateway is not None:
            evicted = self.gateway.evict_idle()
            counters = dict(self.gateway.counters)
            log.info(
                "gateway: %d devices in memory, %d evicted, counters %s",
                self.gateway.links,
                evicted,
                counters,
            )
        if self.worker is not None:
            await self.worker.tidy()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for stop in reversed(self._stops):
            try:
                await stop()
            except Exception:
                log.exception("error while stopping")
        self._stops.clear()


def process_name(gateway: bool, worker: bool, api: bool, dispatcher: bool) -> str:
    """`serve` when all parts run in one process, else the parts joined by `+`."""
    parts = [
        name
        for name, on in (
            ("gateway", gateway),
            ("worker", worker),
            ("api", api),
            ("dispatcher", dispatcher),
        )
        if on
    ]
    return "serve" if len(parts) == 4 else "+".join(parts)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the CLI owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _closer(transport: asyncio.BaseTransport) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        with contextlib.suppress(Exception):
            transport.close()

    return close
