"""A UDP load generator that speaks just enough FLAP to keep a gateway busy.

Each simulated device sends single-fragment UPLOAD_DATA messages in the MAC
envelope (base64, as current CHESTER firmware does) and waits for the ack,
like the firmware: one message in flight per device. The first message uses
sequence 0 (a device after boot), each next one continues two places on.

Two modes:
- closed loop (`rate=None`): a device sends its next message as soon as the
  ack arrives; with enough devices this finds the gateway's maximum rate;
- open loop (`rate=R`): messages start at R per second in total, spread over
  the devices, which is how ack latency is measured at a given load.

A message unanswered for `resend_after` seconds is sent again (the gateway
answers repeats from its cache), as firmware does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass, field
from typing import cast

import cbor2

from nubes.flap import A, F, L, Packet, encode_base64, next_seq, seal

DEMO_DECODER_HASH = bytes.fromhex("6940c0933067d636")


def claim_token(serial: int) -> bytes:
    """A deterministic claim token per serial, so that bench and server agree."""
    return hashlib.sha256(f"nubes-bench-{serial}".encode()).digest()[:16]


def demo_data(sequence: int) -> bytes:
    """UPLOAD_DATA of the demo application: decoder hash + CBOR as firmware builds it."""
    values = {
        0: {1: 1, 2: sequence, 3: int(time.time())},
        4: {5: 1000 + sequence, 6: 3640, 7: 3500, 8: 25},
        27: {28: 2243},
    }
    return b"\x06" + DEMO_DECODER_HASH + cbor2.dumps(values)


@dataclass(slots=True)
class BenchDevice:
    serial: int
    key: bytes
    seq: int = 0
    count: int = 0
    sent_at: float = 0.0
    datagram: bytes = b""
    in_flight: bool = False
    payload: bytes = b""
    # Datagrams made in advance, by sequence number: sealing and base64 cost
    # the generator more than sending, and it must outpace the gateway.
    prepared: dict[int, bytes] = field(default_factory=dict)

    def datagram_for(self, seq: int) -> bytes:
        datagram = self.prepared.get(seq)
        if datagram is None:
            packet = Packet(F | L, seq, self.payload).encode()
            datagram = encode_base64(seal(self.key, self.serial, packet))
        return datagram

    def prepare(self, count: int) -> None:
        """Seals the first `count` messages (sequence 0, 2, 4, ...)."""
        self.payload = self.payload or demo_data(self.serial % 1000)
        seq = 0
        for _ in range(count):
            self.prepared[seq] = self.datagram_for(seq)
            seq = next_seq(seq, 2)


@dataclass
class Result:
    acked: int = 0
    resent: int = 0
    resets: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.acked / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class LoadGenerator(asyncio.DatagramProtocol):
    def __init__(self, devices: list[BenchDevice], *, keep_latency: bool, echo: bool) -> None:
        self.echo = echo  # baseline: any reply counts as the ack
        self.devices = {device.serial: device for device in devices}
        self.result = Result()
        self.keep_latency = keep_latency
        self.transport: asyncio.DatagramTransport | None = None
        self.closed_loop = True
        self.running = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def send_next(self, device: BenchDevice) -> None:
        assert self.transport is not None
        device.datagram = device.datagram_for(device.seq)
        device.sent_at = time.perf_counter()
        device.in_flight = True
        self.transport.sendto(device.datagram)

    def datagram_received(self, data: bytes, addr: object) -> None:
        raw = base64.b64decode(data)
        device = self.devices.get(int.from_bytes(raw[8:12], "big"))
        if device is None or not device.in_flight:
            return
        header = int.from_bytes(raw[12:14], "big")
        if self.echo:
            header = (A << 12) | header & 0xFFF
        if header == 0:  # reset: start over at sequence 0
            self.result.resets += 1
            device.seq = 0
            self.send_next(device)
            return
        if not (header >> 12) & A:
            return
        device.in_flight = False
        device.count += 1
        self.result.acked += 1
        if self.keep_latency:
            self.result.latencies.append(time.perf_counter() - device.sent_at)
        device.seq = next_seq(header & 0xFFF)
        if self.closed_loop and self.running:
            self.send_next(device)

    def resend_stale(self, older_than: float) -> None:
        assert self.transport is not None
        deadline = time.perf_counter() - older_than
        for device in self.devices.values():
            if device.in_flight and device.sent_at < deadline:
                self.result.resent += 1
                device.sent_at = time.perf_counter()
                self.transport.sendto(device.datagram)


async def run_load(
    host: str,
    port: int,
    serials: list[int],
    *,
    duration: float,
    rate: float | None = None,
    keep_latency: bool = False,
    resend_after: float = 2.0,
    echo: bool = False,
    prepare: int = 0,
) -> Result:
    """Drives the gateway for `duration` seconds; returns what was acked."""
    loop = asyncio.get_running_loop()
    devices = [BenchDevice(serial, claim_token(serial)) for serial in serials]
    for device in devices:
        device.prepare(prepare)
    transport, generator = await loop.create_datagram_endpoint(
        lambda: LoadGenerator(devices, keep_latency=keep_latency, echo=echo),
        remote_addr=(host, port),
    )
    generator.closed_loop = rate is None
    start = time.perf_counter()
    try:
        if rate is None:
            for device in devices:
                generator.send_next(device)
            while time.perf_counter() - start < duration:
                await asyncio.sleep(resend_after / 2)
                generator.resend_stale(resend_after)
        else:
            await _open_loop(generator, devices, rate, duration, resend_after, start)
        generator.running = False
        generator.result.elapsed = time.perf_counter() - start
        await asyncio.sleep(min(1.0, resend_after))  # let the last acks in (not counted in rate)
    finally:
        transport.close()
    return generator.result


async def _open_loop(
    generator: LoadGenerator,
    devices: list[BenchDevice],
    rate: float,
    duration: float,
    resend_after: float,
    start: float,
) -> None:
    interval = 1.0 / rate
    sent = 0
    index = 0
    last_resend = start
    while (now := time.perf_counter()) - start < duration:
        due = int((now - start) / interval)
        while sent < due:
            for _ in range(len(devices)):
                device = devices[index % len(devices)]
                index += 1
                if not device.in_flight:
                    generator.send_next(device)
                    break
            sent += 1
        if now - last_resend > resend_after / 2:
            generator.resend_stale(resend_after)
            last_resend = now
        await asyncio.sleep(0.001)
