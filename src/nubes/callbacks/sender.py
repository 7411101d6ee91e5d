"""The sender: one HTTP attempt of a delivery, never an exception.

`Sender.send` turns an `OutgoingRequest` into a `SendResult`: the status,
headers and first `LOGGED_BODY_BYTES` of the answer, or a short reason why
there was none ("timeout after 10 s", "connection refused", "TLS error: ...",
"localhost (127.0.0.1) is a loopback address"). The dispatcher decides what a
result means; the sender only reports it.

Why not httpx: measured on this 2-core machine against a trivial local
receiver, one `httpx.AsyncClient` managed about 700 requests/s with one
request at a time and fell to about 250/s with 50 concurrent ones (its
connection pool and anyio layer cost more than a millisecond a request),
while dispatching needs 3,000/s. So this module is a small HTTP/1.1 client of
its own on asyncio protocols with `httptools` (llhttp, the C parser uvicorn
uses) for answers. It does only what callbacks need: one request per
connection at a time, keep-alive with a bounded pool, no redirects (a 3xx
is an answer like any other and its `Location` takes us nowhere the guard did
not check), no cookies (one customer's receiver must not set cookies that
another customer's callback would send), no proxies from the environment
(the guard would judge the proxy instead of the receiver).

DNS rebinding and TLS: a new connection resolves the URL's host, has the
guard check every address (`guard.check`) and opens the TCP connection to
one of exactly those addresses; there is no second lookup between check and
connect, so a name cannot resolve to a public address for the check and to
127.0.0.1 for the connect. Only the TCP connect uses the address: the request
carries `Host: <name>`, and TLS gets `server_hostname=<name>`, so SNI is the
name and the certificate is verified against the name (hostname checking
and CA verification of the default context stay on). A kept-alive connection
was checked when it was opened. Resolutions are cached for `ADDRESS_TTL`
seconds; the check runs on every connect.

The whole attempt (waiting for a pool slot, DNS, connect, TLS, write, read)
runs inside `asyncio.timeout`, so a receiver that trickles a byte a second
cannot stretch it. At most `LOGGED_BODY_BYTES` of an answer are kept: once
they are in, reading stops and the connection is dropped, so a huge answer is
never read, let alone buffered. Bodies are kept as sent (requests ask for
`Accept-Encoding: identity`), never decompressed.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, unquote, urlsplit

import certifi
import httptools

from nubes.callbacks import guard
from nubes.callbacks.model import LOGGED_BODY_BYTES, OutgoingRequest, SendResult
from nubes.errors import NubesError

logger = logging.getLogger(__name__)

ADDRESS_TTL = 30.0  # seconds a DNS answer is reused
ADDRESS_CACHE_SIZE = 4096  # hosts; the oldest entry goes when full
KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept, as httpx does
MAX_HEADER_BYTES = 65536  # of an answer's header block
DEFAULT_PORTS = {"http": 80, "https": 443}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Our own framing; a callback's headers cannot replace these.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_PATH_SAFE = "/%!$&'()*+,;=:@~"
_QUERY_SAFE = _PATH_SAFE + "?"

Key = tuple[str, str, int]  # scheme, host, port: which connections may be shared


class RequestFailed(NubesError):
    """An attempt that got no usable answer: bad URL or header, broken answer."""


class ConnectionLost(RequestFailed):
    """The receiver closed the connection before a complete answer."""

    def __init__(self, answered: bool) -> None:
        super().__init__("connection closed by the receiver before a complete answer")
        self.answered = answered


@dataclass(frozen=True, slots=True)
class _Target:
    key: Key
    host_header: str
    path: str  # with the query
    authorization: str | None


@functools.lru_cache(maxsize=1024)
def _parse_url(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), parts.hostname or "", parts.port
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except (ValueError, UnicodeError) as err:
        raise RequestFailed(f"invalid URL: {err}") from err
    if scheme not in DEFAULT_PORTS or not host:
        raise RequestFailed("invalid URL: not an http or https URL with a host")
    port = port or DEFAULT_PORTS[scheme]
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_QUERY_SAFE)
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    return _Target((scheme, host, port), host_header, path, authorization)


def _encode_request(request: OutgoingRequest, target: _Target, user_agent: str) -> bytes:
    """The request's bytes; defaults first, the callback's headers override them."""
    if not _TOKEN.match(request.method):
        raise RequestFailed("invalid method")
    headers = {
        "host": ("Host", target.host_header),
        "user-agent": ("User-Agent", user_agent),
        "accept": ("Accept", "*/*"),
        "accept-encoding": ("Accept-Encoding", "identity"),
    }
    if target.authorization is not None:
        headers["authorization"] = ("Authorization", target.authorization)
    for name, value in request.headers:
        if not _TOKEN.match(name) or _BAD_VALUE.search(value):
            raise RequestFailed(f"invalid header {name!r}")
        if name.lower() not in FRAMING_HEADERS:
            headers[name.lower()] = (name, value)
    if request.body or request.method in BODY_METHODS:
        headers["content-length"] = ("Content-Length", str(len(request.body)))
    lines = [f"{request.method} {target.path} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers.values())
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + request.body


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, answer parsed by llhttp."""

    def __init__(self, key: Key, forget: Callable[[_Connection], None]) -> None:
        self.key = key
        self.closed = False
        self.idle_since = 0.0
        self._forget = forget
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._new_answer()

    def _new_answer(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._headers_done = False
        self._body: list[bytes] = []
        self._size = 0
        self._answered = False
        self.reusable = False

    async def exchange(self, data: bytes) -> None:
        """Send `data` and wait until the answer is complete or capped."""
        assert self._transport is not None
        self._new_answer()
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        if self._writable is not None:
            await self._writable
        await self._waiter

    @property
    def body(self) -> bytes:
        return b"".join(self._body)[:LOGGED_BODY_BYTES]

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def _settle(self, error: BaseException | None = None) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    def _settled(self) -> bool:
        return self._waiter is None or self._waiter.done()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._settled():  # unasked-for bytes, or the rest of a capped body
            self.close()
            return
        self._answered = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as err:
            self._settle(RequestFailed(f"invalid HTTP answer: {err}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._forget(self)
        if self._headers_done and not self._framed():
            self._settle()  # the body ran until the connection closed
        self._settle(ConnectionLost(self._answered))
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._settle(RequestFailed("invalid HTTP answer: headers too large"))
        elif not self._settled():
            self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._settled():
            return
        self._body.append(body)
        self._size += len(body)
        if self._size >= LOGGED_BODY_BYTES:  # enough for the log: stop reading
            assert self._transport is not None
            self._transport.pause_reading()
            self._settle()

    def on_message_complete(self) -> None:
        if self.status < 200:  # an interim answer (100 Continue); the real one follows
            self.headers, self._header_bytes, self._headers_done = [], 0, False
            return
        self.reusable = self._parser.should_keep_alive() and not self._settled()
        self._settle()

    def _framed(self) -> bool:
        return any(n.lower() in ("content-length", "transfer-encoding") for n, _ in self.headers)


class _AddressCache:
    """Recent DNS answers by host and port, bounded, oldest evicted first."""

    def __init__(self, ttl: float = ADDRESS_TTL, size: int = ADDRESS_CACHE_SIZE) -> None:
        self._ttl = ttl
        self._size = size
        self._entries: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def addresses(self, host: str, port: int) -> list[str]:
        key = (host, port)
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        addresses = await guard.resolve(host, port)
        self._entries.pop(key, None)
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (now + self._ttl, addresses)
        return addresses


class _Pool:
    """Connections by origin: at most `size` open, idle ones reused newest first."""

    def __init__(self, size: int, allow_private: bool, ssl_context: ssl.SSLContext) -> None:
        self._size = size
        self._allow_private = allow_private
        self._ssl_context = ssl_context
        self._addresses = _AddressCache()
        self._idle: dict[Key, dict[_Connection, None]] = {}
        self._idle_order: dict[_Connection, None] = {}  # oldest first
        self.busy = 0
        self._closed = False

    async def take(self, key: Key) -> tuple[_Connection, bool]:
        """A connection to `key` and whether it was used before."""
        idle = self._idle.get(key)
        while idle:
            connection, _ = idle.popitem()
            del self._idle_order[connection]
            if time.monotonic() - connection.idle_since < KEEPALIVE_EXPIRY:
                return connection, True
            connection.close()
        while self._idle_order and self.busy + len(self._idle_order) > self._size:
            self._evict_oldest()
        return await self._connect(key), False

    def give_back(self, connection: _Connection) -> None:
        if connection.closed or not connection.reusable or self._closed:
            connection.close()
            return
        now = time.monotonic()
        while self._idle_order and now - next(iter(self._idle_order)).idle_since > KEEPALIVE_EXPIRY:
            self._evict_oldest()
        connection.idle_since = now
        self._idle.setdefault(connection.key, {})[connection] = None
        self._idle_order[connection] = None

    def forget(self, connection: _Connection) -> None:
        self._idle_order.pop(connection, None)
        self._idle.get(connection.key, {}).pop(connection, None)

    def close(self) -> None:
        self._closed = True
        for connection in list(self._idle_order):
            connection.close()

    def _evict_oldest(self) -> None:
        oldest = next(iter(self._idle_order))
        self.forget(oldest)
        oldest.close()

    async def _connect(self, key: Key) -> _Connection:
        scheme, host, port = key
        addresses = await self._addresses.addresses(host, port)
        guard.check(host, addresses, allow_private=self._allow_private)
        tls = self._ssl_context if scheme == "https" else None
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        for address in addresses:
            connection = _Connection(key, self.forget)
            try:
                await loop.create_connection(
                    lambda c=connection: c,
                    address,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                )
            except ssl.SSLError:
                raise
            except OSError as err:
                failure = err
                continue
            return connection
        assert failure is not None  # guard.resolve never returns an empty list
        raise failure


def default_ssl_context() -> ssl.SSLContext:
    """CA verification against certifi's roots and hostname checking, HTTP/1.1."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


class Sender:
    """Sends callback requests over pooled keep-alive connections; see the module docstring.

    `max_connections` bounds both the requests in flight and the connections
    open; more concurrent sends wait for a slot (within their timeout).
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        max_connections: int = 200,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._user_agent = user_agent
        self._pool = _Pool(max_connections, allow_private, ssl_context or default_ssl_context())
        self._slots = asyncio.Semaphore(max_connections)

    async def send(self, request: OutgoingRequest, timeout: float) -> SendResult:
        """One attempt, bounded by `timeout` seconds from start to last byte kept."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                connection = await self._exchange(request)
        except Exception as err:  # the edge of an attempt: every failure is a result
            return SendResult(status=None, duration_ms=_ms(started), error=_describe(err, timeout))
        headers = tuple(connection.headers)
        return SendResult(connection.status, headers, connection.body, duration_ms=_ms(started))

    async def close(self) -> None:
        self._pool.close()

    async def _exchange(self, request: OutgoingRequest) -> _Connection:
        target = _parse_url(request.url)
        data = _encode_request(request, target, self._user_agent)
        async with self._slots:
            self._pool.busy += 1
            try:
                return await self._exchange_once(target.key, data)
            finally:
                self._pool.busy -= 1

    async def _exchange_once(self, key: Key, data: bytes) -> _Connection:
        """Send on a kept-alive connection or a new one; again on a new one if
        the kept-alive one turns out to have been closed by the receiver."""
        while True:
            connection, reused = await self._pool.take(key)
            try:
                await connection.exchange(data)
            except ConnectionLost as err:
                connection.close()
                if reused and not err.answered:
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            self._pool.give_back(connection)
            return connection


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _describe(err: Exception, timeout: float) -> str:
    """A short reason for the delivery log; never header values or bodies."""
    if isinstance(err, TimeoutError):
        return f"timeout after {timeout:g} s"
    if isinstance(err, NubesError):  # the guard's refusals, DNS, broken answers
        return str(err)
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS error: certificate verify failed: {err.verify_message}"
    if isinstance(err, ssl.SSLError):
        return f"TLS error: {err.reason or err}"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, OSError):
        return f"connection failed: {err.strerror or err}"
    logger.warning("unexpected error sending a callback request", exc_info=err)
    return f"{type(err).__name__}: {err}"
