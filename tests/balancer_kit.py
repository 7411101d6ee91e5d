"""A small UDP load balancer on loopback, for tests of several gateways.

Each client address (the device's NAT binding) gets its own upstream socket
per backend, so the backend sees one stable source per client and its
answers are mapped back to that client through the listening socket, as
IPVS or nginx `proxy_responses` do. Modes:

- `sticky`: a client stays on the backend it was first given (round robin
  over new clients), like `hash $remote_addr`;
- `remap-after N`: sticky, but every N datagrams of a client move it to the
  next backend (a NAT rebinding, or a gateway restart, in the middle of a
  device's session);
- `round-robin`: every datagram to the next backend (the worst case).

Run it alone: `python tests/balancer_kit.py --listen 127.0.0.1:5003
--backend 127.0.0.1:6003 --backend 127.0.0.1:7003 --mode remap-after --every 7`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

Address = tuple[str, int]


@dataclass
class _Client:
    backend: int
    datagrams: int = 0
    upstreams: dict[int, socket.socket] = field(default_factory=dict)


class Balancer(asyncio.DatagramProtocol):
    """Listens on one address and spreads clients over `backends` by `mode`."""

    def __init__(self, backends: list[Address], mode: str = "sticky", every: int = 0) -> None:
        if mode not in ("sticky", "remap-after", "round-robin"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode == "remap-after" and every < 1:
            raise ValueError("remap-after needs every >= 1")
        self.backends = backends
        self.mode = mode
        self.every = every
        self.counters: Counter[str] = Counter()
        self._clients: dict[Address, _Client] = {}
        self._next_client = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._loop = asyncio.get_running_loop()

    def datagram_received(self, data: bytes, addr: Address) -> None:  # type: ignore[override]
        client = self._clients.get(addr)
        if client is None:
            client = _Client(self._next_client % len(self.backends))
            self._next_client += 1
            self._clients[addr] = client
        client.datagrams += 1
        if self._moves(client):
            self._move(client)
        self.counters[f"to backend {client.backend}"] += 1
        try:
            self._upstream(addr, client).send(data)
        except OSError:
            self.counters["dropped"] += 1

    def _moves(self, client: _Client) -> bool:
        if self.mode == "round-robin":
            return client.datagrams > 1
        return self.mode == "remap-after" and client.datagrams % self.every == 0

    def _move(self, client: _Client) -> None:
        client.backend = (client.backend + 1) % len(self.backends)
        self.counters["remaps"] += 1

    def _upstream(self, addr: Address, client: _Client) -> socket.socket:
        sock = client.upstreams.get(client.backend)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(self.backends[client.backend])
            assert self._loop is not None
            self._loop.add_reader(sock.fileno(), self._answer, sock, addr)
            client.upstreams[client.backend] = sock
        return sock

    def _answer(self, sock: socket.socket, addr: Address) -> None:
        for _ in range(64):
            try:
                data = sock.recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                return
            assert self._transport is not None
            self._transport.sendto(data, addr)
            self.counters["answers"] += 1

    def close(self) -> None:
        assert self._loop is not None
        for client in self._clients.values():
            for sock in client.upstreams.values():
                self._loop.remove_reader(sock.fileno())
                sock.close()
        if self._transport is not None:
            self._transport.close()


async def start_balancer(
    listen: Address, backends: list[Address], mode: str, every: int = 0
) -> tuple[Balancer, int]:
    """Starts a balancer on `listen` (port 0: a free one); returns it and its port."""
    loop = asyncio.get_running_loop()
    balancer = Balancer(backends, mode, every)
    transport, _ = await loop.create_datagram_endpoint(lambda: balancer, local_addr=listen)
    return balancer, int(transport.get_extra_info("sockname")[1])


class BalancerThread:
    """A balancer on its own event loop in a thread, for synchronous tests."""

    def __init__(self, backends: list[Address], mode: str, every: int = 0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            start_balancer(("127.0.0.1", 0), backends, mode, every), self._loop
        )
        self.balancer, self.port = started.result(10)

    @property
    def counters(self) -> Counter[str]:
        return Counter(self.balancer.counters)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self.balancer.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def _address(text: str) -> Address:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def _main(args: argparse.Namespace) -> None:
    balancer, port = await start_balancer(
        _address(args.listen), [_address(b) for b in args.backend], args.mode, args.every
    )
    print(f"balancing on {port}", flush=True)
    try:
        while True:
            await asyncio.sleep(5)
            print(dict(balancer.counters), flush=True)
    finally:
        balancer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--backend", action="append", required=True)
    parser.add_argument("--mode", default="sticky")
    parser.add_argument("--every", type=int, default=0)
    asyncio.run(_main(parser.parse_args()))
