"""A simulated CHESTER: the firmware's cloud loop over a real UDP socket.

What it does, like `ctr_cloud` in the CHESTER SDK: start a session
(CREATE_SESSION, poll for SET_SESSION), upload its decoder, encoder and
config when the cloud's hashes differ, then send data periodically, poll
for downlinks whenever an ack carries P (and now and then regardless), run
config downlinks (apply, then reboot and start a new session) and shell
downlinks (answer with UPLOAD_SHELL carrying the same id).

The FLAP state machine is `flap.DeviceTransfer`; this module adds the
5-second answer timeout and the message logic. The envelope is a `Link`'s
business: the device hands it FLAP packets and takes FLAP packets from its
inbox, so one device class serves both envelopes. A `Network` gives each
device its link: `SharedSocket` here (the MAC envelope; many devices share
one socket and answers are routed by the serial number in the envelope),
`nubes.sim.dtls.DtlsNetwork` for DTLS (one socket and association each).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, cast

from nubes import flap
from nubes.errors import EnvelopeError, MessageError, PacketError
from nubes.flap import DeviceTransfer, DownlinkReceived, MessageType, NothingWaiting, Packet
from nubes.sim import messages as m
from nubes.sim.data import sample_values
from nubes.sim.types import Link, Network, Profile, Stats

# `Profile` and `Stats` live in `types` (the DTLS link needs them too); they
# stay importable from here, where the device is.
__all__ = ["Link", "MacLink", "Network", "Profile", "SharedSocket", "SimDevice", "Stats"]

log = logging.getLogger(__name__)


class SharedSocket(asyncio.DatagramProtocol):
    """One UDP socket for many devices; answers go to the device of their serial."""

    def __init__(self, base64: bool) -> None:
        self.base64 = base64
        self.links: dict[int, MacLink] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: object) -> None:
        try:
            raw = flap.decode_base64(data) if self.base64 else data
            envelope = flap.open_envelope(raw)
        except EnvelopeError:
            return
        link = self.links.get(envelope.serial)
        if link is not None:
            link.deliver(envelope)

    def send(self, datagram: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(flap.encode_base64(datagram) if self.base64 else datagram)

    def attach(self, profile: Profile, stats: Stats) -> MacLink:
        link = MacLink(self, profile)
        self.links[profile.serial] = link
        return link


class MacLink:
    """A device's MAC envelope on a `SharedSocket`: sealed out, verified in."""

    def __init__(self, sock: SharedSocket, profile: Profile) -> None:
        self._sock = sock
        self._profile = profile
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue(16)
        self.fragment_limit = flap.FRAGMENT_LIMIT["base64" if sock.base64 else "raw"]

    async def ready(self) -> bool:
        return True

    def send(self, packet: bytes) -> None:
        self._sock.send(flap.seal(self._profile.claim_token, self._profile.serial, packet))

    def deliver(self, envelope: flap.Envelope) -> None:
        if flap.verify(envelope, self._profile.claim_token) and not self.inbox.full():
            self.inbox.put_nowait(envelope.packet)

    def unanswered(self) -> None:
        return None

    async def close(self) -> None:
        if self._sock.links.get(self._profile.serial) is self:
            del self._sock.links[self._profile.serial]


class SimDevice:
    """One simulated device; `run` is its life until `stop_at` or `messages` data sent."""

    def __init__(self, profile: Profile, network: Network, stats: Stats, seed: int) -> None:
        self.profile = profile
        self._link = network.attach(profile, stats)
        self._stats = stats
        self._rng = random.Random(seed)
        self.transfer = DeviceTransfer(self._link.fragment_limit, retries=1)
        self.session: dict[int, Any] = {}
        self.reboot_requested = False
        self._shell_answers: list[bytes] = []
        self._sequence = 0
        self.decoder_hash, self._decoder_message = m.upload_codec("decoder", profile.decoder_yaml)
        self._decoder_document: dict[str, Any] = _document(profile.decoder_yaml)
        self.encoder_hash: int | None = None
        self._encoder_message = b""
        if profile.encoder_yaml:
            self.encoder_hash, self._encoder_message = m.upload_codec(
                "encoder", profile.encoder_yaml
            )
        self.received: list[m.Downlink] = []

    # -- a device's life ----------------------------------------------------------------

    async def run(
        self, *, stop_at: float, interval: float, poll_interval: float, messages: int | None
    ) -> None:
        sent = 0
        while time.monotonic() < stop_at and (messages is None or sent < messages):
            if not await self.start_session():
                await asyncio.sleep(min(5.0, interval))
                continue
            await self.synchronise()
            last_poll = time.monotonic()
            while not self.reboot_requested and time.monotonic() < stop_at:
                if messages is not None and sent >= messages:
                    break
                await asyncio.sleep(interval * self._rng.uniform(0.8, 1.2) if sent else 0)
                if await self.send_data():
                    sent += 1
                if time.monotonic() - last_poll >= poll_interval:
                    await self.poll_all()
                    last_poll = time.monotonic()
            if messages is not None and sent >= messages:
                await self.poll_all()

    async def start_session(self) -> bool:
        self.transfer.reboot()
        self.reboot_requested = False
        self.session = {}
        if not await self.uplink(m.create_session(self._attributes())):
            return False
        await self.poll_all()
        if self.session.get(0):
            self._stats.sessions += 1
            log.info("device %d: session %d", self.profile.serial, self.session[0])
            return True
        return False

    async def synchronise(self) -> None:
        """Uploads what the cloud's SET_SESSION did not know."""
        if self.session.get(1) != self.decoder_hash:
            self._stats.uploads += await self.uplink(self._decoder_message)
        if self.encoder_hash is not None and self.session.get(2) != self.encoder_hash:
            self._stats.uploads += await self.uplink(self._encoder_message)
        if self.session.get(3) != m.config_hash(self.profile.config):
            self._stats.uploads += await self.uplink(m.upload_config(self.profile.config))

    async def send_data(self) -> bool:
        self._sequence += 1
        values = sample_values(self._decoder_document, self._sequence, self._rng)
        start = time.perf_counter()
        acked = await self.uplink(m.upload_data(self.decoder_hash, values))
        if acked:
            self._stats.data_acked += 1
            self._stats.latencies.append(time.perf_counter() - start)
        return acked

    # -- exchanges ------------------------------------------------------------------------

    async def uplink(self, message: bytes) -> bool:
        """Sends one message; polls afterwards when the ack says a downlink waits."""
        events = await self._exchange(self.transfer.send(message))
        acked = [e for e in events if isinstance(e, flap.UplinkAcked)]
        if acked and acked[-1].downlink_waiting and message[0] != MessageType.CREATE_SESSION:
            await self.poll_all()
        return bool(acked)

    async def poll_all(self) -> None:
        """Polls until the cloud has nothing more, then answers shell commands."""
        for _ in range(32):
            events = await self._exchange(self.transfer.poll())
            got = [e for e in events if isinstance(e, DownlinkReceived)]
            for event in got:
                self._handle(event.message)
            if not got or any(isinstance(e, NothingWaiting) for e in events):
                break
            if self.reboot_requested:
                break
        answers, self._shell_answers = self._shell_answers, []
        for answer in answers:
            if await self.uplink(answer):
                self._stats.shell_answers += 1

    async def _exchange(self, packet: Packet) -> list[flap.DeviceEvent]:
        events: list[flap.DeviceEvent] = []
        while True:
            step = self.transfer.on_answer(await self._roundtrip(packet))
            events.extend(step.events)
            for event in step.events:
                if isinstance(event, flap.SequenceReset):
                    self._stats.resets += 1
                elif isinstance(event, flap.GaveUp):
                    self._stats.gave_up += 1
                    log.info("device %d gave up: %s", self.profile.serial, event.reason)
            if step.send is None:
                return events
            if not step.expect_answer:
                self._transmit(step.send)
                return events
            packet = step.send

    def _transmit(self, packet: Packet) -> None:
        self._link.send(packet.encode())

    async def _roundtrip(self, packet: Packet) -> Packet | None:
        if not await self._link.ready():
            return None  # no way to the cloud now (a failed handshake): no answer
        inbox = self._link.inbox
        while not inbox.empty():
            inbox.get_nowait()  # a late answer to an earlier packet
        self._transmit(packet)
        deadline = time.monotonic() + self.profile.timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(inbox.get(), left)
            except TimeoutError:
                break
            try:
                return Packet.decode(raw)
            except PacketError:
                continue
        self._stats.timeouts += 1
        self._link.unanswered()
        return None

    async def close(self) -> None:
        """Ends the device's link (DTLS: a close_notify, the socket closed)."""
        await self._link.close()

    # -- downlinks ------------------------------------------------------------------------

    def _handle(self, message: bytes) -> None:
        try:
            downlink = m.parse_downlink(message)
        except MessageError as err:
            log.warning("device %d: bad downlink: %s", self.profile.serial, err)
            return
        self._stats.downlinks += 1
        self.received.append(downlink)
        if downlink.type == MessageType.SET_SESSION and isinstance(downlink.value, dict):
            self.session = downlink.value
        elif downlink.type == MessageType.DOWNLOAD_CONFIG:
            self._apply_config([str(line) for line in downlink.value])
        elif downlink.type == MessageType.DOWNLOAD_SHELL:
            self._run_shell(downlink.value)
        log.info("device %d: %s", self.profile.serial, downlink.type.name)

    def _apply_config(self, commands: list[str]) -> None:
        """Runs `app config NAME VALUE` lines, then reboots, as the firmware does."""
        for command in commands:
            words = command.split()
            prefix = " ".join(words[:-1])
            self.profile.config = [
                line for line in self.profile.config if not line.startswith(prefix + " ")
            ]
            self.profile.config.append(command)
        self.reboot_requested = True

    def _run_shell(self, value: Any) -> None:
        commands = [str(c) for c in value.get(0, [])]
        message_id = bytes(value.get(1, b""))
        results: list[tuple[str, int, list[str]]] = []
        for command in commands:
            if command.endswith("config show"):
                results.append((command, 0, list(self.profile.config)))
            elif command.startswith(("app ", "lte ", "sys ")):
                results.append((command, 0, [f"{command}: ok"]))
            else:
                results.append((command, -8, [f"{command.split()[0]}: command not found"]))
        self._shell_answers.append(m.upload_shell(message_id, results))

    def _attributes(self) -> dict[int, Any]:
        serial = self.profile.serial
        return {
            0: 0,
            1: "HARDWARIO",
            2: "CHESTER-M",
            3: "CGLS",
            4: "R3.2",
            5: "com.hardwario.chester.app.demo",
            6: "nubes-sim",
            7: "v3.0.0",
            8: f"{serial % 1_000_000:06d}",
            9: 901288000000000 + serial % 10**9,
            10: 351358810000000 + serial % 10**9,
            11: "mfw_nrf9160_1.3.5",
            16: serial,
            17: f"8942031019{serial % 10**9:09d}",
        }


def _document(yaml_text: str) -> dict[str, Any]:
    import yaml

    loaded = yaml.safe_load(yaml_text)
    return loaded if isinstance(loaded, dict) else {}
