"""The API's metrics: a plain ASGI middleware counts, families at scrape time.

`RequestMetrics` wraps the whole app (outermost, so 413s and the portal
count too) without Starlette's `BaseHTTPMiddleware`, which would put every
request through a task and a stream. Per request it keeps the status of
the response head and, once the app returns, adds one to a `Counter` and
one observation to a histogram.

Labels stay bounded: the route is FastAPI's template
(`/v1/devices/{device_id}`, from `scope["route"]`, never the raw path;
`<none>` when no API route matched, e.g. unknown paths and the portal's
files), the method one of the standard ones or `OTHER`, the status its
class (`2xx`). Server-Sent Event streams (`text/event-stream`) are not
requests that end: they count in `nubes_api_streams_open` while open and
stay out of the latency histogram, which would otherwise hold their
lifetimes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nubes.metrics import LabelledHistograms, histogram_family

__all__ = ["LATENCY_BUCKETS", "HttpStats", "RequestMetrics", "families"]

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
NO_ROUTE = "<none>"
EVENT_STREAM = b"text/event-stream"


class HttpStats:
    """What the middleware counts; `families` reads it."""

    __slots__ = ("latency", "requests", "streams_open")

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()  # method, route, status class
        self.latency = LabelledHistograms(LATENCY_BUCKETS)  # (method, route)
        self.streams_open = 0


class RequestMetrics:
    """Counts and times every HTTP request of the app it wraps into `stats`."""

    def __init__(self, app: ASGIApp, stats: HttpStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, stream = 500, False  # if the app raises before a response head

        async def timed_send(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = message["status"]
                stream = _is_event_stream(message)
                self.stats.streams_open += stream
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self._count(scope, status, stream, time.perf_counter() - started)

    def _count(self, scope: Scope, status: int, stream: bool, seconds: float) -> None:
        method = scope["method"]
        if method not in METHODS:
            method = "OTHER"
        route = scope.get("route")
        template: str = getattr(route, "path", NO_ROUTE)
        self.stats.requests[method, template, f"{status // 100}xx"] += 1
        if stream:
            self.stats.streams_open -= 1
        else:
            self.stats.latency.observe((method, template), seconds)


def _is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type":
            return bool(value.startswith(EVENT_STREAM))
    return False


def families(stats: HttpStats) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "nubes_api_requests",
        "HTTP requests answered, by method, route template and status class",
        labels=["method", "route", "status"],
    )
    for labels, count in sorted(stats.requests.items()):
        requests.add_metric(list(labels), count)
    yield requests
    yield histogram_family(
        "nubes_api_request_duration_seconds",
        "Time from a request's arrival to the end of its response (streams excluded)",
        ["method", "route"],
        stats.latency.by_labels,
    )
    yield GaugeMetricFamily(
        "nubes_api_streams_open",
        "Server-Sent Event streams open (/v1/messages/stream)",
        value=stats.streams_open,
    )
