"""Device and cloud over a network that loses and duplicates packets (hypothesis).

A `DeviceTransfer` and a `Transfer` talk through `Network`, which loses a
packet in either direction, or delivers a device packet twice, at random. The
gateway's part is played too: completed uplinks are committed (or, now and
then, abandoned as if storage had failed), and downlinks are offered at
random moments, including between receive and commit.

What must hold, whatever the losses:
- every uplink the device considers acked was committed by the cloud exactly
  once, and no uplink was committed twice;
- every downlink the cloud considers delivered (other than by the documented
  seq-0 assumption) reached the device;
- the device gets no downlink twice, unless it restarted with a seq-0 packet
  identical to the one the cloud had answered with that downlink: the cloud
  cannot tell that restart from a repeat and answers it from its cache
  (at least once rather than at most once, see `nubes.flap.transfer`);
- once the network is good again, a few polls drain the queue, and then
  everything the device received is delivered in the cloud's eyes;
- nothing raises.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from nubes.flap import (
    FRAGMENT_LIMIT,
    REPEAT_RESET_SECONDS,
    DeviceEvent,
    DeviceTransfer,
    DownlinkDelivered,
    DownlinkReceived,
    MessageReceived,
    Outcome,
    Packet,
    Transfer,
    UplinkAcked,
)

EXCHANGE_LIMIT = 10_000


@dataclass
class Network:
    """Carries one device packet to the cloud and returns the answer the device hears."""

    cloud: Transfer
    rng: random.Random
    loss: float
    abandon: float
    now: float = 0.0
    offered: dict[Hashable, bytes] = field(default_factory=dict)
    committed: list[bytes] = field(default_factory=list)
    delivered: dict[Hashable, bool] = field(default_factory=dict)  # id -> assumed
    replayed_at_zero: bool = False  # a seq-0 repeat was answered with a cached downlink

    def carry(self, packet: Packet) -> Packet | None:
        self.now += 1.0
        if self.lost():
            return None
        copies = 2 if self.rng.random() < self.loss else 1
        answers = [self.cloud_answer(packet) for _ in range(copies)]
        heard = [answer for answer in answers if answer is not None and not self.lost()]
        return heard[0] if heard else None

    def cloud_answer(self, packet: Packet) -> Packet | None:
        step = self.cloud.receive(packet, self.now)
        answer = step.answer
        if step.outcome is Outcome.duplicate and packet.seq == 0 and answer and answer.data:
            self.replayed_at_zero = True
        for event in step.events:
            if isinstance(event, DownlinkDelivered):
                assert event.downlink_id not in self.delivered
                self.delivered[event.downlink_id] = event.assumed
            elif isinstance(event, MessageReceived):
                answer = self.settle_uplink(event.message)
        return answer

    def settle_uplink(self, message: bytes) -> Packet | None:
        if self.rng.random() < 0.3:
            self.offer()  # as the gateway offers SET_SESSION before the ack
        if self.rng.random() < self.abandon:
            self.cloud.abandon()
            return None
        self.committed.append(message)
        return self.cloud.commit(self.now)

    def offer(self) -> None:
        number = len(self.offered)
        size = self.rng.choice([1, 2, 299, 300, 301, 360, 494, 495, self.rng.randint(1, 16384)])
        message = unique(number, size, self.rng)
        self.offered[number] = message
        self.cloud.offer(number, message)

    def lost(self) -> bool:
        return self.rng.random() < self.loss


def unique(number: int, size: int, rng: random.Random) -> bytes:
    """`size` bytes that differ from every other message of the same size."""
    head = number.to_bytes(4, "big")[-size:] if size < 4 else number.to_bytes(4, "big")
    return head + rng.randbytes(size - len(head))


def run_exchange(device: DeviceTransfer, network: Network, first: Packet) -> list[DeviceEvent]:
    events: list[DeviceEvent] = []
    packet = first
    for _ in range(EXCHANGE_LIMIT):
        step = device.on_answer(network.carry(packet))
        events.extend(step.events)
        if step.send is None:
            return events
        if not step.expect_answer:  # the final ack of a downlink
            network.carry(step.send)
            return events
        packet = step.send
    raise AssertionError("the exchange never ended")


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    uplink_sizes=st.lists(st.integers(1, 16383), max_size=6),
    polls=st.integers(0, 6),
    envelope=st.sampled_from(sorted(FRAGMENT_LIMIT)),
    retries=st.integers(0, 3),
    ack_with_poll=st.booleans(),
    loss=st.sampled_from([0.0, 0.05, 0.2, 0.4]),
    abandon=st.sampled_from([0.0, 0.2]),
)
def test_lossy_network_keeps_the_guarantees(
    seed: int,
    uplink_sizes: list[int],
    polls: int,
    envelope: str,
    retries: int,
    ack_with_poll: bool,
    loss: float,
    abandon: float,
) -> None:
    rng = random.Random(seed)
    network = Network(Transfer(FRAGMENT_LIMIT[envelope]), rng, loss, abandon)
    device = DeviceTransfer(FRAGMENT_LIMIT[envelope], retries=retries, ack_with_poll=ack_with_poll)
    acked: list[bytes] = []
    received: list[bytes] = []
    actions = [("send", size) for size in uplink_sizes] + [("poll", 0)] * polls
    rng.shuffle(actions)
    for number, (action, size) in enumerate(actions):
        if rng.random() < 0.4:
            network.offer()
        if action == "send":
            message = unique(1000 + number, size, rng)
            events = run_exchange(device, network, device.send(message))
            acked += [message for event in events if isinstance(event, UplinkAcked)]
        else:
            events = run_exchange(device, network, device.poll())
        received += [event.message for event in events if isinstance(event, DownlinkReceived)]

    assert all(network.committed.count(message) == 1 for message in acked)
    assert len(set(network.committed)) == len(network.committed)
    assert len(set(received)) == len(received) or network.replayed_at_zero
    for downlink_id, assumed in network.delivered.items():
        assert assumed or network.offered[downlink_id] in received

    network.loss = network.abandon = 0.0
    for _ in range(len(network.offered) + 1):
        network.now += REPEAT_RESET_SECONDS + 1  # the device polls later, not as a repeat
        events = run_exchange(device, network, device.poll())
        received += [event.message for event in events if isinstance(event, DownlinkReceived)]
    assert not network.cloud.waiting
    assert set(network.delivered) == set(network.offered)
    assert {network.offered[i] for i, assumed in network.delivered.items() if not assumed} <= set(
        received
    )
    assert set(received) <= set(network.offered.values())
