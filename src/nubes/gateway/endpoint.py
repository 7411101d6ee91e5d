"""UDP endpoints of the MAC envelope (ports 5002 raw and 5003 base64).

Runs on uvloop's datagram transport: the stdlib one allocates 256 KiB per
receive and reads one datagram per loop turn (~25k datagrams/s here), uvloop
reads several hundred thousand. The socket's receive buffer is raised so
that bursts of devices waking together are queued by the kernel rather than
dropped.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import cast

from nubes.errors import ConfigError
from nubes.gateway.service import Gateway, MacChannel

log = logging.getLogger(__name__)

RECEIVE_BUFFER = 4 * 1024 * 1024


class MacEndpoint(asyncio.DatagramProtocol):
    """Hands every datagram of one port to the gateway."""

    def __init__(self, gateway: Gateway, *, base64: bool) -> None:
        self._gateway = gateway
        self._base64 = base64
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            except OSError as err:
                log.warning("cannot raise the UDP receive buffer: %s", err)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        channel = MacChannel(self._transport, (addr[0], addr[1]), len(data), self._base64)
        try:
            self._gateway.on_mac_datagram(data, channel)
        except Exception:
            log.exception("unexpected error handling a datagram from %s", addr[0])

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


async def open_mac_endpoint(
    gateway: Gateway, host: str, port: int, *, base64: bool
) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: MacEndpoint(gateway, base64=base64), local_addr=(host, port)
        )
    except OSError as err:
        setting = "NUBES_FLAP_BASE64_PORT" if base64 else "NUBES_FLAP_RAW_PORT"
        raise ConfigError(
            f"cannot listen on {host}:{port}/udp ({err.strerror or err}); is another server "
            f"running? Stop it, or choose another port with {setting}"
        ) from err
    return transport
