"""The gateway: FLAP packets in, answers out, records to the pipeline.

Each datagram goes through the same steps, all synchronous except two:

1. the envelope is opened and verified (`on_mac_datagram`), or the DTLS
   endpoint decrypted the record (`on_dtls_packet`);
2. the device's transfer state machine decides the answer (`flap.Transfer`);
3. a completed uplink is translated and handed to the `Publisher`; the ack
   goes out only once the pipeline durably accepted it (awaited);
4. an explicit poll with nothing queued first asks the database for
   downlinks queued elsewhere (awaited);
5. with several gateways (`nubes.gateway.state`), a device's first packet
   here loads its shared snapshot, and so does a packet its link would
   answer with a reset or find stale (awaited); every packet that changed
   a link marks it for the next batched save.

While a device has an awaited step under way its packets wait in the link's
backlog, so a device's packets are always handled in order. Every packet in
and out of a known device is written to the communication log (best effort,
batched); unknown serials and undecodable datagrams are only counted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import Counter, OrderedDict
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from nubes import codec as codecs
from nubes import dtls, flap
from nubes.errors import CodecError, CodecHashError, EnvelopeError, MessageError, PacketError
from nubes.gateway.directory import DeviceInfo, Directory
from nubes.gateway.downlinks import (
    Offer,
    pending_offers,
    set_session_offer,
    set_timestamp_offer,
)
from nubes.gateway.handover import adopt, snapshot_of
from nubes.gateway.handshakes import HandshakeLog
from nubes.gateway.link import Channel, DeviceLink
from nubes.gateway.publisher import Publisher
from nubes.gateway.sessions import SessionIds, session_record
from nubes.gateway.state import LocalState, SharedState, StateWriter, decode, encode
from nubes.gateway.translate import translate
from nubes.ids import uuid7
from nubes.pipeline import records

log = logging.getLogger(__name__)

MAX_BASE64_DATAGRAM = 1400  # base64 of the 1024-byte envelope limit, with slack

# Outcomes after which another gateway may know the device better.
_CONSULT = (flap.Outcome.reset, flap.Outcome.stale)


class Gateway:
    """Envelope-independent FLAP handling for every device."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        directory: Directory,
        publisher: Publisher,
        session_ids: SessionIds,
        publish_timeout: float,
        idle_seconds: float,
        max_links: int,
        state: SharedState | None = None,
    ) -> None:
        self._engine = engine
        self._directory = directory
        self._publisher = publisher
        self._session_ids = session_ids
        self._publish_timeout = publish_timeout
        self._idle_seconds = idle_seconds
        self._max_links = max_links
        self._links: OrderedDict[int, DeviceLink] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters: Counter[str] = Counter()
        self._handshakes = HandshakeLog(directory, publisher, self.counters)
        directory.on_change(self._device_changed)
        self._state: SharedState = state or LocalState()
        self._writer = StateWriter(self._state, self._snapshot) if self._state.shared else None

    # -- the MAC envelope ------------------------------------------------------

    def on_mac_datagram(self, data: bytes, channel: MacChannel) -> None:
        """Handles one datagram of port 5002 (raw) or 5003 (base64)."""
        self.counters["datagrams_in"] += 1
        if channel.base64 and len(data) > MAX_BASE64_DATAGRAM:
            self.counters["dropped:too long"] += 1
            return
        try:
            raw = flap.decode_base64(data) if channel.base64 else data
            envelope = flap.open_envelope(raw)
        except EnvelopeError as err:
            self.counters[f"dropped:{err.reason}"] += 1
            return
        info = self._directory.get(envelope.serial)
        if info is None:
            self.counters["dropped:unknown serial"] += 1
            return
        if not info.enabled:
            self.counters["dropped:device disabled"] += 1
            return
        channel.bind(info)
        if not flap.verify(envelope, info.claim_token):
            self._reject_forgery(info, channel)
            return
        self.on_packet(self._link(info, channel, time.monotonic()), envelope.packet, channel)

    def _reject_forgery(self, info: DeviceInfo, channel: MacChannel) -> None:
        """A known serial with a wrong tag: a reset, and the device's state untouched.

        No link is made or replaced for it: an unauthenticated datagram must
        not be able to disturb the device's transfer.
        """
        self._log(info, channel, "in", None, channel.size_in, "bad_mac", "MAC tag does not match")
        size = channel.send(flap.RESET.encode())
        self.counters["datagrams_out"] += 1
        self._log(info, channel, "out", flap.RESET, size, "reset", "")

    # -- the DTLS envelope -----------------------------------------------------

    def on_dtls_packet(self, serial: int, raw_packet: bytes, channel: ClosableChannel) -> None:
        """One decrypted record (a FLAP packet) of an established DTLS association."""
        self.counters["datagrams_in"] += 1
        info = self._directory.get(serial)
        if info is None or not info.enabled:
            # Deleted or disabled after the handshake: end the association.
            self.counters["dropped:device disabled"] += 1
            channel.close()
            return
        self.on_packet(self._link(info, channel, time.monotonic()), raw_packet, channel)

    def on_dtls_event(self, event: dtls.DtlsEvent, started: float | None) -> None:
        """A DTLS handshake's start and end, or an association's end, into the log."""
        self._handshakes.event(event, started)

    # -- packets -----------------------------------------------------------------

    def on_packet(self, link: DeviceLink, raw_packet: bytes, channel: Channel) -> None:
        now = time.monotonic()
        link.last_activity = now
        if link.busy:
            if len(link.backlog) == link.backlog.maxlen:
                self.counters["dropped:backlog full"] += 1
            link.backlog.append((raw_packet, channel, now))
            return
        self._process(link, raw_packet, channel, now)

    def _process(self, link: DeviceLink, raw_packet: bytes, channel: Channel, now: float) -> None:
        try:
            packet = flap.Packet.decode(raw_packet)
        except PacketError as err:
            self._log(link.info, channel, "in", None, channel.size_in, "invalid", err.reason)
            return
        link.remote, link.envelope = channel.remote, channel.envelope
        explicit_poll = packet.flags == flap.P and not packet.data
        if link.reload_downlinks or (explicit_poll and not link.transfer.waiting):
            self._spawn_locked(link, self._load_then_receive(link, packet, channel, now))
            return
        self._handle(link, packet, channel, now)

    def _handle(self, link: DeviceLink, packet: flap.Packet, channel: Channel, now: float) -> None:
        if (
            self._writer is not None
            and link.consulted != packet
            and link.transfer.confirms_unseen(packet)
        ):
            self._spawn_locked(link, self._consult(link, packet, channel, now, None))
            return
        message = self._receive(link, packet, channel, now)
        if message is not None:
            self._accept(link, message, channel, packet)

    def _receive(
        self, link: DeviceLink, packet: flap.Packet, channel: Channel, now: float
    ) -> bytes | None:
        """Runs the transfer state machine; returns a completed uplink to accept."""
        step = link.transfer.receive(packet, now)
        message = None
        for event in step.events:
            if isinstance(event, flap.MessageReceived):
                message = event.message
            else:
                self._on_transfer_event(link, event)
        if message is not None:
            return message  # logged in `_submit`, once it has its session and message id
        if self._writer is not None:
            if step.outcome is flap.Outcome.accepted:
                self._writer.changed(link.info.serial)
            elif step.outcome in _CONSULT and link.consulted != packet:
                self._spawn_locked(link, self._consult(link, packet, channel, now, step))
                return None
        self._answer(link, packet, channel, step)
        return None

    def _answer(self, link: DeviceLink, packet: flap.Packet, channel: Channel, step: Any) -> None:
        """Logs a packet that completed no uplink, and sends the step's answer."""
        self._log(link.info, channel, "in", packet, channel.size_in, str(step.outcome), step.reason)
        if step.answer is not None:
            self._send(
                link, channel, step.answer, "reset" if step.answer == flap.RESET else "answer"
            )

    async def _load_then_receive(
        self, link: DeviceLink, packet: flap.Packet, channel: Channel, now: float
    ) -> None:
        try:
            if link.restore:
                link.restore = False
                await self._restore(link)
            await self._reload_downlinks(link)
        finally:
            link.busy = False
        self._handle(link, packet, channel, now)
        if not link.busy:  # else an accepted message holds the device until it is durable
            self._release(link)

    async def _reload_downlinks(self, link: DeviceLink) -> None:
        try:
            offers = await pending_offers(self._engine, link.info.id)
        except Exception:
            log.exception(
                "cannot read downlinks of device %s", link.info.serial, extra=_context(link)
            )
            return
        link.reload_downlinks = False
        pending = {offer.downlink_id for offer in offers}
        for key, offer in list(link.offers.items()):
            if offer.stored and key not in pending:
                link.withdraw(key)  # cancelled or expired meanwhile
        for offer in offers:
            link.offer(offer)

    # -- several gateways ----------------------------------------------------------

    async def _consult(
        self, link: DeviceLink, packet: flap.Packet, channel: Channel, now: float, step: Any
    ) -> None:
        """Before a reset (or ignoring a stale packet): has another gateway served it since?"""
        try:
            adopted = await self._restore(link)
        finally:
            link.busy = False
        link.consulted = packet
        if adopted or step is None:
            self._handle(link, packet, channel, now)
        else:
            self._answer(link, packet, channel, step)
        if not link.busy:
            self._release(link)

    async def _restore(self, link: DeviceLink) -> bool:
        """Continues the link from the shared snapshot when that is newer.

        Whenever there is a snapshot, the other gateways are told to forget
        the device, even when it is this gateway's own or not newer: another
        gateway may have continued from it and answered only repeats, which
        saves nothing; its copy would take the repeat of a message stored
        here since for a new one, and store it again.
        """
        serial = link.info.serial
        raw = await self._state.load(serial)
        snapshot = None if raw is None else decode(raw)
        if snapshot is None:
            self.counters["state:none"] += 1
            return False
        self._spawn(self._state.takeover(serial))
        if not adopt(link, snapshot):
            self.counters["state:not newer"] += 1
            return False
        self.counters["state:adopted"] += 1
        return True

    def _snapshot(self, serial: int) -> bytes | None:
        link = self._links.get(serial)
        if link is None:
            return None
        snapshot = snapshot_of(link, self._state.owner)
        return None if snapshot is None else encode(snapshot, link.rest_cache)

    def on_takeover(self, serial: int, owner: str) -> None:
        """Another gateway serves the device now: this one's link is out of date."""
        link = self._links.get(serial)
        if link is None:
            return
        self.counters["state:taken over"] += 1
        if link.busy:
            link.restore = link.reload_downlinks = True
        else:
            del self._links[serial]

    def on_takeovers_missed(self) -> None:
        """Takeovers may have been lost (the subscription dropped): any link may be
        out of date, so each consults the shared state before its next packet."""
        for link in self._links.values():
            link.restore = link.reload_downlinks = True
        self.counters["state:takeovers missed"] += 1
        log.warning("takeovers may have been missed: %d links will consult Redis", len(self._links))

    def _release(self, link: DeviceLink) -> None:
        """Ends an awaited step and handles what arrived meanwhile, in order."""
        link.busy = False
        while link.backlog and not link.busy:
            raw_packet, channel, now = link.backlog.popleft()
            self._process(link, raw_packet, channel, now)

    # -- uplink messages -----------------------------------------------------------

    def _accept(
        self, link: DeviceLink, message: bytes, channel: Channel, packet: flap.Packet
    ) -> None:
        """Starts making a completed uplink durable; it is acked once it is.

        The device's packets wait in its backlog meanwhile (`link.busy`). Only a
        session start awaits anything here (a new session id); every other
        message goes straight to the publisher, with a callback for the outcome:
        no task per message on the hot path.
        """
        at = time.time()
        try:
            uplink = flap.parse_uplink(message)
            self._check_codec(uplink)
        except (MessageError, CodecError) as err:
            link.transfer.abandon()
            self._refuse(link, channel, packet, "invalid", str(err))
            return
        link.busy = True
        if isinstance(uplink, flap.CreateSession):
            self._spawn(self._start_session(link, uplink, message, channel, packet, at))
            return
        extra = None
        if isinstance(uplink, flap.GetTimestamp):
            extra = set_timestamp_offer(at)
            link.offer(extra)
        self._submit(link, uplink, message, channel, packet, at, [], extra)

    async def _start_session(
        self,
        link: DeviceLink,
        uplink: flap.CreateSession,
        message: bytes,
        channel: Channel,
        packet: flap.Packet,
        at: float,
    ) -> None:
        try:
            session_id = await self._session_ids.next()
        except Exception as err:
            log.exception("no session id for device %s", link.info.serial, extra=_context(link))
            link.transfer.abandon()
            self._refuse(link, channel, packet, "rejected", f"no session id: {err}")
            self._release(link)
            return
        link.info.session_id = session_id
        session = session_record(link.info, uplink, channel, at)
        extra = set_session_offer(link.info, session_id, at)
        link.offer(extra, first=True)
        batch = [session, *self._handshakes.opened_session(link.info.serial, session_id)]
        self._submit(link, uplink, message, channel, packet, at, batch, extra)

    def _submit(
        self,
        link: DeviceLink,
        uplink: flap.Uplink,
        message: bytes,
        channel: Channel,
        packet: flap.Packet,
        at: float,
        batch: list[records.Record],
        extra: Offer | None,
    ) -> None:
        """Hands the records of an uplink to the publisher; `_durable` answers."""
        self._learn(link.info, uplink)
        translation = translate(uplink)
        message_id = uuid7(at)
        batch.append(
            records.message_record(
                message_id=message_id,
                at=at,
                device=link.info,
                session_id=link.info.session_id,
                type_name=translation.type_name,
                direction="up",
                raw=message,
                body=translation.body,
                codec_hash=translation.codec_hash,
            )
        )
        batch.append(
            self._log_record(
                link.info,
                channel,
                "in",
                packet,
                channel.size_in,
                "accepted",
                "",
                message_id,
            )
        )
        self._publisher.submit(
            batch,
            functools.partial(
                self._durable, link, channel, packet, message_id, extra, translation.type_name
            ),
        )

    def _durable(
        self,
        link: DeviceLink,
        channel: Channel,
        packet: flap.Packet,
        message_id: uuid.UUID,
        extra: Offer | None,
        type_name: str,
        error: BaseException | None,
    ) -> None:
        """Acks an uplink the pipeline accepted; leaves a refused one unacked."""
        try:
            if error is not None:
                link.transfer.abandon()
                if extra is not None:
                    link.withdraw(extra.downlink_id)
                self._refuse(
                    link, channel, packet, "rejected", "pipeline did not accept the message"
                )
                return
            self.counters["in:accepted"] += 1
            self.counters[f"messages:{type_name}"] += 1
            ack = link.transfer.commit(time.monotonic())
            self._send(link, channel, ack, "ack", message_id)
            if self._writer is not None:
                self._writer.changed(link.info.serial)
        finally:
            self._release(link)

    @staticmethod
    def _check_codec(uplink: flap.Uplink) -> None:
        """Refuses a codec upload whose bytes do not hash to the announced hash.

        Only the hash: a codec that our rules cannot use (say, a keyword of a
        newer firmware) is still acked and stored, or the device would repeat
        its session start for ever; its data then waits undecoded.
        """
        if isinstance(uplink, flap.UploadCodec):
            actual = codecs.codec_hash(uplink.cbor)
            if actual != uplink.codec_hash:
                raise CodecHashError(
                    f"codec hash mismatch: announced {codecs.hash_hex(uplink.codec_hash)}, "
                    f"content hashes to {codecs.hash_hex(actual)}"
                )

    @staticmethod
    def _learn(info: DeviceInfo, uplink: flap.Uplink) -> None:
        """Keeps the hashes the device just told, for its next SET_SESSION."""
        if isinstance(uplink, flap.UploadCodec):
            setattr(info, f"{uplink.kind}_hash", codecs.hash_hex(uplink.codec_hash))
        elif isinstance(uplink, flap.UploadConfig):
            info.config_hash = codecs.hash_hex(uplink.config_hash)

    # -- downlink events ------------------------------------------------------------

    def _on_transfer_event(self, link: DeviceLink, event: object) -> None:
        at = time.time()
        if isinstance(event, flap.DownlinkSent):
            offer = link.offers.get(event.downlink_id)
            if offer is not None and offer.stored:
                self._publisher.submit(
                    [
                        records.downlink_record(
                            downlink_id=str(offer.downlink_id),
                            state="sent",
                            at=at,
                            attempt=event.attempt,
                        )
                    ]
                )
        elif isinstance(event, flap.DownlinkDelivered):
            self._delivered(link, event.downlink_id, at)

    def _delivered(self, link: DeviceLink, downlink_id: Any, at: float) -> None:
        offer = link.offers.pop(downlink_id, None)
        if offer is None:
            return
        link.delivered.append(downlink_id)
        batch = []
        if offer.stored:
            batch.append(
                records.downlink_record(downlink_id=str(downlink_id), state="delivered", at=at)
            )
        batch.append(
            records.message_record(
                message_id=uuid7(at),
                at=at,
                device=link.info,
                session_id=link.info.session_id,
                type_name=offer.type_name,
                direction="down",
                raw=offer.message,
                body=offer.body,
                downlink_id=downlink_id if offer.stored else None,
            )
        )
        self._publisher.submit(batch)

    def _device_changed(self, info: DeviceInfo) -> None:
        link = self._links.get(info.serial)
        if link is not None:
            link.info = info if info.enabled else link.info
            link.reload_downlinks = True

    # -- links, sending, logging -------------------------------------------------------

    def _link(self, info: DeviceInfo, channel: Channel, now: float) -> DeviceLink:
        link = self._links.get(info.serial)
        limit = flap.FRAGMENT_LIMIT[channel.envelope]
        if link is None or link.fragment_limit != limit:
            link = DeviceLink(info, flap.Transfer(limit), limit, now, restore=self._state.shared)
            self._links[info.serial] = link
            if len(self._links) > self._max_links:
                self._evict_oldest()
        else:
            link.info = info
            self._links.move_to_end(info.serial)
        return link

    def _evict_oldest(self) -> None:
        for serial, link in self._links.items():
            if not link.busy:
                del self._links[serial]
                self.counters["links evicted"] += 1
                return

    def evict_idle(self) -> int:
        """Forgets devices idle for longer than the idle limit; returns how many."""
        deadline = time.monotonic() - self._idle_seconds
        idle = [
            s for s, link in self._links.items() if link.last_activity < deadline and not link.busy
        ]
        for serial in idle:
            del self._links[serial]
        self.counters["links expired"] += len(idle)
        return len(idle)

    def _send(
        self,
        link: DeviceLink,
        channel: Channel,
        packet: flap.Packet,
        outcome: str,
        message_id: uuid.UUID | None = None,
    ) -> None:
        size = channel.send(packet.encode())
        self.counters["datagrams_out"] += 1
        self._log(link.info, channel, "out", packet, size, outcome, "", message_id)

    def _log(
        self,
        info: DeviceInfo,
        channel: Channel,
        direction: str,
        packet: flap.Packet | None,
        size: int,
        outcome: str,
        detail: str,
        message_id: uuid.UUID | None = None,
    ) -> None:
        """Counts a datagram and adds it to the communication log (best effort)."""
        self.counters[f"{direction}:{outcome}"] += 1
        self._publisher.add(
            self._log_record(info, channel, direction, packet, size, outcome, detail, message_id)
        )

    @staticmethod
    def _log_record(
        info: DeviceInfo,
        channel: Channel,
        direction: str,
        packet: flap.Packet | None,
        size: int,
        outcome: str,
        detail: str,
        message_id: uuid.UUID | None,
    ) -> records.Record:
        return records.log_record(
            session_id=info.session_id,
            device_id=info.id,
            at=time.time(),
            direction=direction,
            envelope=channel.envelope,
            remote=channel.remote,
            flags=None if packet is None else packet.flags,
            seq=None if packet is None else packet.seq,
            size=size,
            outcome=outcome,
            detail=detail,
            message_id=message_id,
        )

    def _refuse(
        self, link: DeviceLink, channel: Channel, packet: flap.Packet, outcome: str, detail: str
    ) -> None:
        """Logs the last fragment of a message that is left unacked, and why."""
        log.info(
            "device %s: message %s: %s", link.info.serial, outcome, detail, extra=_context(link)
        )
        self._log(link.info, channel, "in", packet, channel.size_in, outcome, detail)

    def _spawn_locked(self, link: DeviceLink, coroutine: Any) -> None:
        """Runs an awaited step of a device; its packets wait until `_release`."""
        link.busy = True
        self._spawn(coroutine)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._publish_timeout + 1)
        if self._writer is not None:
            await self._writer.close()

    @property
    def links(self) -> int:
        return len(self._links)


class MacChannel:
    """Answers one MAC-envelope datagram: seal with the device key, send back."""

    __slots__ = ("_info", "_transport", "base64", "envelope", "remote", "size_in")

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        remote: tuple[str, int],
        size_in: int,
        base64: bool,
    ) -> None:
        self._transport = transport
        self.remote = remote
        self.size_in = size_in
        self.base64 = base64
        self.envelope = "base64" if base64 else "raw"
        self._info: DeviceInfo | None = None

    def bind(self, info: DeviceInfo) -> None:
        self._info = info

    def send(self, packet: bytes) -> int:
        assert self._info is not None
        datagram = flap.seal(self._info.claim_token, self._info.serial, packet)
        if self.base64:
            datagram = flap.encode_base64(datagram)
        self._transport.sendto(datagram, self.remote)
        return len(datagram)


class ClosableChannel(Channel, Protocol):
    """A channel whose association can be ended (DTLS)."""

    def close(self) -> None: ...


def _context(link: DeviceLink) -> dict[str, object]:
    """The device's identifiers as log fields (see nubes.logs)."""
    return {
        "serial": link.info.serial,
        "device_id": link.info.id,
        "session_id": link.info.session_id,
    }
