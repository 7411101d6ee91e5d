"""The operations port: /health, /ready and /metrics for every process type.

Containers, load balancers, `nubes healthcheck` and Prometheus ask these;
they are kept off the API's port because the gateway, worker and
dispatcher have no HTTP server of their own (and the API's port faces
users, metrics do not). A minimal HTTP/1.1 responder on asyncio is enough
for the GET requests of probes and scrapers, so no web framework runs in
those processes.

- `/health` (liveness) answers 200 while the event loop turns.
- `/ready` (readiness) answers 200 when every dependency of the process
  answers within `CHECK_TIMEOUT`: the database (and its schema is not behind
  this code), RabbitMQ, Redis; else 503 with what failed.
- `/metrics` answers the process's metrics in the Prometheus text format
  (`nubes.metrics`), rendered by `metrics()` at each scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nubes import __version__
from nubes.metrics import CONTENT_TYPE, exposition, registry

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]
Answer = tuple[int, str, bytes]  # status, content type, body

JSON = "application/json"
PATHS = ["/health", "/ready", "/metrics"]

CHECK_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
MAX_REQUEST = 8192


class OpsServer:
    """Serves one process's probes and metrics; `checks` name its dependencies.

    `metrics` renders the text of /metrics; without it /metrics has nothing
    but `nubes_build_info`.
    """

    def __init__(
        self,
        process: str,
        checks: Mapping[str, Check],
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self._process = process
        self._checks = dict(checks)
        self._metrics = metrics or _build_info_only(process)
        self._started = time.time()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int | None:
        if self._server is None or not self._server.sockets:
            return None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def health(self) -> tuple[int, dict[str, Any]]:
        uptime = round(time.time() - self._started, 1)
        body = {"status": "ok", "process": self._process, "version": __version__, "uptime": uptime}
        return 200, body

    async def ready(self) -> tuple[int, dict[str, Any]]:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[name]) for name in names))
        checks = dict(zip(names, results, strict=True))
        ok = all(result == "ok" for result in results)
        status = "ready" if ok else "not_ready"
        body = {"status": status, "process": self._process, "checks": checks}
        return (200 if ok else 503), body

    @staticmethod
    async def _run(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except TimeoutError:
            return f"no answer within {CHECK_TIMEOUT:g} s"
        except Exception as err:  # a probe reports; it never fails the process
            return str(err) or type(err).__name__
        return "ok"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            status, content_type, payload = await self._answer(head)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status, content_type, payload = _json(400, {"error": "bad request"})
        except ConnectionError:
            writer.close()
            return
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
        writer.write(
            f"HTTP/1.1 {status} {reason.get(status, 'Service Unavailable')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + payload
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _answer(self, head: bytes) -> Answer:
        method, _, rest = head.partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if path.decode("latin-1") not in PATHS:
            return _json(404, {"error": "not found", "paths": PATHS})
        if method not in (b"GET", b"HEAD"):
            return _json(405, {"error": "method not allowed"})
        if path == b"/metrics":
            return 200, CONTENT_TYPE, self._metrics()
        route = self.health if path == b"/health" else self.ready
        return _json(*await route())


def _json(status: int, body: dict[str, Any]) -> Answer:
    return status, JSON, json.dumps(body).encode()


def _build_info_only(process: str) -> Callable[[], bytes]:
    own = registry(process)
    return lambda: exposition(own)
