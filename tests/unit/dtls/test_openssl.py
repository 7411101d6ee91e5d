"""Interoperability: OpenSSL's `s_client` against `DtlsServer` over loopback UDP.

A tiny test-only loop (a plain socket, the sans-IO server, the monotonic
clock) echoes each record back as `echo:<record>`. It proves that a
third-party DTLS 1.2 stack completes the PSK handshake with the cookie
exchange and extended master secret, and that our Python record layer
talks to it both ways. Bounded: 15 s at most, loopback only.
"""

from __future__ import annotations

import select
import socket
import subprocess
import time

import pytest

from conftest import require_tool
from nubes.dtls import Closed, DtlsServer, Established, Output
from unit.dtls.kit import KEY, SERIAL, new_server

DEADLINE = 15.0


def require_openssl() -> str:
    return require_tool("openssl", "for the DTLS interop test")


def serve_once(sock: socket.socket, server: DtlsServer, seen: Output) -> None:
    """Handle one datagram (or a timeout), echoing records back."""
    ready, _, _ = select.select([sock], [], [], 0.05)
    now = time.monotonic()
    outputs = [server.poll(now)]
    if ready:
        datagram, address = sock.recvfrom(65_535)
        outputs.append(server.receive(datagram, address, now))
    for out in outputs:
        seen.extend(out)
        for association, record in out.records:
            outputs.append(server.send(association.address, b"echo:" + record, now))
        for datagram, address in out.datagrams:
            sock.sendto(datagram, address)


@pytest.mark.parametrize(
    ("cipher", "suite"),
    [
        ("PSK-AES128-CCM8", "TLS-PSK-WITH-AES-128-CCM-8"),
        ("PSK-AES128-GCM-SHA256", "TLS-PSK-WITH-AES-128-GCM-SHA256"),
    ],
)
def test_openssl_s_client_handshakes_and_gets_its_record_echoed(cipher: str, suite: str) -> None:
    openssl = require_openssl()
    server = new_server(suites=("TLS-PSK-WITH-AES-128-CCM-8", "TLS-PSK-WITH-AES-128-GCM-SHA256"))
    seen = Output()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        command = [
            openssl, "s_client", "-dtls1_2", "-quiet", "-no_ign_eof",
            "-cipher", f"{cipher}@SECLEVEL=0",
            "-psk_identity", f"hsn:{SERIAL}", "-psk", KEY.hex(),
            "-connect", f"127.0.0.1:{port}",
        ]  # fmt: skip
        client = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert client.stdin is not None
            client.stdin.write(b"hello-nubes\n")
            client.stdin.flush()
            end = time.monotonic() + DEADLINE
            while time.monotonic() < end and not seen.records:
                serve_once(sock, server, seen)
            client.stdin.close()  # s_client ends on end of input
            while time.monotonic() < end and client.poll() is None:
                serve_once(sock, server, seen)
        finally:
            if client.poll() is None:
                client.kill()
            client.wait()
        assert client.stdout is not None
        assert client.stderr is not None
        stdout, stderr = client.stdout.read(), client.stderr.read()
    established = [event for event in seen.events if isinstance(event, Established)]
    assert established, stderr.decode(errors="replace")
    assert established[0].association.suite == suite
    assert [record for _, record in seen.records] == [b"hello-nubes\n"]
    assert b"echo:hello-nubes" in stdout
    closed = [event.reason for event in seen.events if isinstance(event, Closed)]
    assert closed == ["peer_closed"]  # s_client sends close_notify when its input ends
