"""The sender against real HTTP receivers on loopback.

Each receiver is a small asyncio server on 127.0.0.1 whose answer is a
coroutine, so a test can make it answer, fail, redirect, hang, trickle or
flood. It records every request it saw and every connection it accepted.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import require_tool
from nubes.callbacks.model import LOGGED_BODY_BYTES, OutgoingRequest
from nubes.callbacks.sender import Sender

WAIT = 5.0  # seconds any condition may take before a test fails


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    number_on_connection: int


Handler = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Receiver:
    handler: Handler
    port: int = 0
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            for number in range(1, 1_000_000):
                seen = await _read_request(reader, number)
                self.requests.append(seen)
                await self.handler(seen, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        except asyncio.CancelledError:  # stop(): the test is over
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _read_request(reader: asyncio.StreamReader, number: int) -> Seen:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    method, target, _ = head[0].split(" ")
    headers = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Seen(method, target, headers, body, number)


@asynccontextmanager
async def receiver(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    recv = Receiver(handler)
    server = await asyncio.start_server(recv.serve, "127.0.0.1", 0, ssl=tls)
    recv.port = server.sockets[0].getsockname()[1]
    try:
        yield recv
    finally:
        server.close()
        await recv.stop()
        await server.wait_closed()


def answer(status: int, body: bytes = b"", *extra: str) -> Handler:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *extra]
    data = ("\r\n".join(head) + "\r\n\r\n").encode() + body

    async def handler(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return handler


async def hang(seen: Seen, writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    s = Sender(allow_private=True, user_agent="nubes/test")
    yield s
    await s.close()


@pytest.fixture
async def guarded() -> AsyncIterator[Sender]:
    s = Sender(allow_private=False, user_agent="nubes/test")
    yield s
    await s.close()


def post(url: str, body: bytes = b'{"t": 21.5}', *headers: tuple[str, str]) -> OutgoingRequest:
    return OutgoingRequest("POST", url, (("Content-Type", "application/json"), *headers), body)


async def test_2xx_is_ok_with_status_headers_and_body(sender: Sender) -> None:
    async with receiver(answer(201, b"created", "X-Receipt: r-1")) as recv:
        result = await sender.send(post(recv.url("/hook?a=1"), b'{"t": 1}', ("X-Id", "d-1")), 5)
    assert result.ok
    assert (result.status, result.body, result.error) == (201, b"created", None)
    assert ("X-Receipt", "r-1") in result.headers
    assert result.duration_ms > 0
    [seen] = recv.requests
    assert (seen.method, seen.target, seen.body) == ("POST", "/hook?a=1", b'{"t": 1}')
    assert seen.headers["host"] == f"127.0.0.1:{recv.port}"
    assert seen.headers["user-agent"] == "nubes/test"
    assert seen.headers["x-id"] == "d-1"
    assert seen.headers["content-type"] == "application/json"


async def test_get_sends_no_body(sender: Sender) -> None:
    async with receiver(answer(204)) as recv:
        result = await sender.send(OutgoingRequest("GET", recv.url("/q?x=%C3%A9"), ()), 5)
    assert result.status == 204
    [seen] = recv.requests
    assert (seen.method, seen.target, seen.body) == ("GET", "/q?x=%C3%A9", b"")
    assert "content-length" not in seen.headers


async def test_500_is_not_ok_and_its_body_is_kept(sender: Sender) -> None:
    async with receiver(answer(500, b"database down")) as recv:
        result = await sender.send(post(recv.url()), 5)
    assert not result.ok
    assert (result.status, result.body, result.error) == (500, b"database down", None)


async def test_redirect_is_recorded_not_followed(sender: Sender) -> None:
    async with receiver(answer(302, b"", "Location: /elsewhere")) as recv:
        result = await sender.send(post(recv.url()), 5)
    assert (result.status, result.ok) == (302, False)
    assert ("Location", "/elsewhere") in result.headers
    assert [s.target for s in recv.requests] == ["/hook"]


async def test_connections_are_kept_alive_and_reused(sender: Sender) -> None:
    async with receiver(answer(200, b"ok")) as recv:
        results = [await sender.send(post(recv.url()), 5) for _ in range(5)]
    assert all(r.ok for r in results)
    assert recv.connections == 1


async def test_concurrent_sends_all_arrive(sender: Sender) -> None:
    async with receiver(answer(200, b"ok")) as recv:
        results = await asyncio.gather(*(sender.send(post(recv.url()), 5) for _ in range(200)))
    assert all(r.ok for r in results)
    assert len(recv.requests) == 200


async def test_a_kept_alive_connection_closed_by_the_receiver_is_replaced(sender: Sender) -> None:
    async def once_per_connection(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if seen.number_on_connection > 1:  # the receiver's idle timeout won the race
            writer.transport.abort()
            return
        await answer(200, b"ok")(seen, writer)

    async with receiver(once_per_connection) as recv:
        first = await sender.send(post(recv.url()), 5)
        second = await sender.send(post(recv.url()), 5)
    assert (first.status, second.status) == (200, 200)
    assert recv.connections == 2


async def test_chunked_answer_is_read(sender: Sender) -> None:
    async def chunked(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        await writer.drain()

    async with receiver(chunked) as recv:
        result = await sender.send(post(recv.url()), 5)
    assert (result.status, result.body) == (200, b"hello world")


async def test_answer_delimited_by_close_is_read(sender: Sender) -> None:
    async def until_close(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async with receiver(until_close) as recv:
        result = await sender.send(post(recv.url()), 5)
    assert (result.status, result.body) == (200, b"all of it")


async def test_hanging_receiver_times_out_within_the_timeout(sender: Sender) -> None:
    async with receiver(hang) as recv:
        started = time.monotonic()
        result = await sender.send(post(recv.url()), 0.5)
        elapsed = time.monotonic() - started
    assert (result.status, result.error) == (None, "timeout after 0.5 s")
    assert 0.45 <= elapsed < 0.5 + 0.5
    assert len(recv.requests) == 1


@pytest.mark.parametrize("part", ["headers", "body"])
async def test_trickling_receiver_times_out_within_the_timeout(sender: Sender, part: str) -> None:
    async def trickle(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        if part == "body":
            writer.write(b"Content-Length: 100000\r\n\r\n")
        while True:  # every byte well within any per-read timeout
            writer.write(b"X-Slow: 1\r\n" if part == "headers" else b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with receiver(trickle) as recv:
        started = time.monotonic()
        result = await sender.send(post(recv.url()), 0.5)
        elapsed = time.monotonic() - started
    assert (result.status, result.ok, result.error) == (None, False, "timeout after 0.5 s")
    assert 0.45 <= elapsed < 0.5 + 0.5


async def test_huge_answer_is_cut_without_being_read(sender: Sender) -> None:
    total = 1 << 30
    stopped: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def flood(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode())
        chunk, sent = b"x" * 65536, 0
        try:
            while sent < total:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        finally:
            stopped.set_result(sent)

    async with receiver(flood) as recv:
        result = await sender.send(post(recv.url()), 10)
        sent = await asyncio.wait_for(stopped, WAIT)
    assert (result.status, result.body) == (200, b"x" * LOGGED_BODY_BYTES)
    assert sent < total // 100  # the sender hung up instead of reading a gigabyte


async def test_connection_refused_is_a_result(sender: Sender) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await sender.send(post(f"http://127.0.0.1:{port}/hook"), 5)
    assert (result.status, result.error) == (None, "connection refused")


async def test_unknown_host_is_a_result(sender: Sender) -> None:
    result = await sender.send(post("http://nonexistent.invalid/hook"), 5)
    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("DNS lookup of nonexistent.invalid failed")


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://example.com/x", "invalid URL: not an http or https URL with a host"),
        ("http:///nohost", "invalid URL: not an http or https URL with a host"),
        ("http://example.com:99999/", "invalid URL: Port out of range 0-65535"),
    ],
)
async def test_invalid_url_is_a_result(sender: Sender, url: str, error: str) -> None:
    assert (await sender.send(post(url), 5)).error == error


async def test_header_injection_is_refused_before_connecting(sender: Sender) -> None:
    async with receiver(answer(200)) as recv:
        result = await sender.send(post(recv.url(), b"", ("X-A", "1\r\nX-Injected: 2")), 5)
    assert (result.status, result.error) == (None, "invalid header 'X-A'")
    assert recv.connections == 0


async def test_guard_refuses_loopback_before_connecting(guarded: Sender) -> None:
    async with receiver(answer(200)) as recv:
        result = await guarded.send(post(recv.url()), 5)
    assert (result.status, result.error) == (None, "127.0.0.1 is a loopback address")
    assert recv.connections == 0


async def test_guard_refuses_a_name_that_resolves_to_loopback(guarded: Sender) -> None:
    async with receiver(answer(200)) as recv:
        result = await guarded.send(post(recv.url(host="localhost")), 5)
    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("localhost (")
    assert result.error.endswith(") is a loopback address")
    assert recv.connections == 0


async def test_guard_refuses_cloud_metadata(guarded: Sender) -> None:
    result = await guarded.send(post("http://169.254.169.254/latest/meta-data/"), 5)
    assert result.error == "169.254.169.254 is a cloud metadata address"


# TLS: a certificate for the name "localhost" only, served on 127.0.0.1.


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    require_tool("openssl", "to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
async def trusting(certificate: tuple[Path, Path]) -> AsyncIterator[Sender]:
    context = ssl.create_default_context(cafile=str(certificate[0]))
    s = Sender(allow_private=True, user_agent="nubes/test", ssl_context=context)
    yield s
    await s.close()


async def test_tls_is_verified_against_the_name_not_the_address(
    trusting: Sender, server_tls: ssl.SSLContext
) -> None:
    async with receiver(answer(200, b"secure"), tls=server_tls) as recv:
        by_name = await trusting.send(post(recv.url(host="localhost", scheme="https")), 5)
        by_address = await trusting.send(post(recv.url(scheme="https")), 5)
    assert (by_name.status, by_name.body) == (200, b"secure")
    assert recv.requests[0].headers["host"] == f"localhost:{recv.port}"
    assert by_address.status is None
    assert by_address.error is not None
    assert by_address.error.startswith("TLS error: certificate verify failed: IP address mismatch")


async def test_untrusted_certificate_is_a_tls_error(
    sender: Sender, server_tls: ssl.SSLContext
) -> None:
    async with receiver(answer(200), tls=server_tls) as recv:
        result = await sender.send(post(recv.url(host="localhost", scheme="https")), 5)
    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("TLS error: certificate verify failed: self")
    assert recv.requests == []


async def test_tls_to_a_plain_http_receiver_is_a_tls_error(sender: Sender) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        result = await sender.send(post(f"https://127.0.0.1:{port}/"), 5)
    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("TLS error: ")


async def test_a_real_asgi_server_answers_streamed_and_kept_alive(sender: Sender) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    bodies: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        bodies.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 202, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"acc", "more_body": True})
        await send({"type": "http.response.body", "body": b"epted"})

    listening = socket.create_server(("127.0.0.1", 0))  # connects queue until uvicorn accepts
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[listening]), name="uvicorn receiver")
    try:
        results = [await sender.send(post(f"http://127.0.0.1:{port}/"), 5) for _ in range(3)]
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, WAIT)
        listening.close()
    assert [(r.status, r.body) for r in results] == [(202, b"accepted")] * 3
    assert ("x-a", "1") in results[0].headers
    assert bodies == [b'{"t": 21.5}'] * 3
