"""The firmware-like device end: the boot trace from the device's side, and each rule."""

from __future__ import annotations

import pytest

from nubes.flap import (
    RESET,
    A,
    DeviceEvent,
    DeviceStep,
    DeviceTransfer,
    DownlinkReceived,
    F,
    GaveUp,
    L,
    NothingWaiting,
    P,
    Packet,
    SequenceReset,
    UplinkAcked,
    open_envelope,
    seal,
)

from .conftest import CLAIM_TOKEN, SERIAL


def packet_of(datagram: bytes) -> Packet:
    return Packet.decode(open_envelope(datagram).packet)


def device_step(send: Packet | None, expect: bool, *events: DeviceEvent) -> DeviceStep:
    return DeviceStep(send, expect, events)


def test_device_sends_the_boot_trace_byte_for_byte(
    boot_trace: list[tuple[bytes, bytes | None]],
) -> None:
    device = DeviceTransfer(360)
    trace = iter(boot_trace)
    messages = [packet_of(boot_trace[i][0]).data for i in (0, 3, 9)]
    seen: list[object] = []

    def exchange(packet: Packet) -> None:
        while True:
            datagram, answer = next(trace)
            assert seal(CLAIM_TOKEN, SERIAL, packet.encode()) == datagram
            if not device.busy:
                assert answer is None  # the final ack of a downlink gets no answer
                return
            assert answer is not None
            step = device.on_answer(packet_of(answer))
            seen.extend(step.events)
            if step.send is None:
                return
            packet = step.send

    exchange(device.send(messages[0]))  # CREATE_SESSION
    exchange(device.poll())  # SET_SESSION
    exchange(device.send(messages[1]))  # UPLOAD_CONFIG
    exchange(device.poll())  # DOWNLOAD_CONFIG
    exchange(device.poll())  # nothing
    exchange(device.poll())  # DOWNLOAD_SHELL
    exchange(device.send(messages[2]))  # UPLOAD_SHELL
    assert [type(event).__name__ for event in seen] == [
        "UplinkAcked",
        "DownlinkReceived",
        "UplinkAcked",
        "DownlinkReceived",
        "NothingWaiting",
        "DownlinkReceived",
        "UplinkAcked",
    ]
    assert seen[0] == UplinkAcked(downlink_waiting=True)
    assert seen[-1] == UplinkAcked(downlink_waiting=False)


def test_uplink_is_fragmented_and_numbered_like_the_firmware() -> None:
    device = DeviceTransfer(4)
    assert device.send(b"\x060123456789") == Packet(F, 0, b"\x06012")
    assert device.on_answer(Packet(A, 1)) == device_step(Packet(0, 2, b"3456"), True)
    assert device.on_answer(Packet(A, 3)) == device_step(Packet(L, 4, b"789"), True)
    done = device.on_answer(Packet(A | P, 5))
    assert done == device_step(None, False, UplinkAcked(True))
    assert (device.busy, device.seq) == (False, 6)


def test_downlink_is_acked_fragment_by_fragment() -> None:
    device = DeviceTransfer()
    assert device.poll() == Packet(P, 0)
    assert device.on_answer(Packet(F, 1, b"\x86ab")).send == Packet(A, 2)
    assert device.on_answer(Packet(0, 3, b"cd")).send == Packet(A, 4)
    last = device.on_answer(Packet(L | P, 5, b"e"))
    assert last == device_step(Packet(A, 6), False, DownlinkReceived(b"\x86abcde", True))
    assert (device.busy, device.seq) == (False, 7)


def test_empty_answer_to_a_poll_means_nothing_waits() -> None:
    device = DeviceTransfer()
    device.poll()
    assert device.on_answer(Packet(F | L, 1)) == device_step(None, False, NothingWaiting())
    assert device.seq == 2


def test_ack_with_poll_fetches_the_next_downlink_at_once() -> None:
    device = DeviceTransfer(ack_with_poll=True)
    device.poll()
    step = device.on_answer(Packet(F | L | P, 1, b"\x86one"))
    assert step == device_step(Packet(A | P, 2), True, DownlinkReceived(b"\x86one", True))
    last = device.on_answer(Packet(F | L, 3, b"\x86two"))
    assert last == device_step(Packet(A, 4), False, DownlinkReceived(b"\x86two", False))


def test_timeouts_repeat_the_identical_packet_then_give_up() -> None:
    device = DeviceTransfer(retries=2)
    first = device.send(b"\x06x")
    assert device.on_answer(None) == device_step(first, True)
    assert device.on_answer(None) == device_step(first, True)
    assert device.on_answer(None) == device_step(None, False, GaveUp("no answer"))
    assert (device.busy, device.seq) == (False, 0)


def test_firmware_gives_up_at_the_first_timeout() -> None:
    device = DeviceTransfer()
    device.send(b"\x06x")
    device.on_answer(Packet(A, 1))
    device.send(b"\x06y")
    assert device.on_answer(None).events == (GaveUp("no answer"),)
    assert device.send(b"\x06z").seq == 0


def test_reset_restarts_the_message_at_seq_zero() -> None:
    device = DeviceTransfer(2, max_restarts=1)
    device.send(b"\x06abc")
    device.on_answer(Packet(A, 1))
    restart = device.on_answer(RESET)
    assert restart == device_step(Packet(F, 0, b"\x06a"), True, SequenceReset("reset by the cloud"))
    gave_up = device.on_answer(RESET)
    assert gave_up.events == (GaveUp("reset by the cloud, too many restarts"),)


def test_unexpected_sequence_restarts_a_poll() -> None:
    device = DeviceTransfer()
    device.poll()
    step = device.on_answer(Packet(F | L, 9))
    assert step == device_step(Packet(P, 0), True, SequenceReset("answer seq 9, expected 1"))


def test_repeated_answer_makes_the_device_repeat_its_packet() -> None:
    device = DeviceTransfer(retries=1)
    device.send(b"\x06x")
    device.on_answer(Packet(A, 1))
    second = device.send(b"\x06y")
    assert device.on_answer(Packet(A, 1)) == device_step(second, True)
    assert device.on_answer(Packet(A, 1)).events == (GaveUp("repeated answer"),)


@pytest.mark.parametrize(
    ("answer", "event"),
    [
        (Packet(F | A, 1), GaveUp("unexpected flags in an uplink ack")),
        (Packet(0, 1, b"x"), SequenceReset("uplink ack with data")),
    ],
)
def test_odd_uplink_acks(answer: Packet, event: DeviceEvent) -> None:
    device = DeviceTransfer()
    device.send(b"\x06x")
    assert device.on_answer(answer).events == (event,)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Packet(A, 1), "downlink fragment with A"),
        (Packet(L, 1, b"x"), "downlink starts without F"),
    ],
)
def test_odd_downlink_fragments(answer: Packet, reason: str) -> None:
    device = DeviceTransfer()
    device.poll()
    assert device.on_answer(answer).events == (GaveUp(reason),)
    assert device.seq == 0


def test_one_exchange_at_a_time() -> None:
    device = DeviceTransfer()
    with pytest.raises(RuntimeError, match="no packet awaits"):
        device.on_answer(None)
    device.poll()
    with pytest.raises(RuntimeError, match="under way"):
        device.send(b"\x06x")
    device.reboot()
    assert device.send(b"\x06x").seq == 0
    assert device.busy


@pytest.mark.parametrize("message", [b"", bytes(16385)])
def test_message_sizes(message: bytes) -> None:
    with pytest.raises(ValueError, match="a message has"):
        DeviceTransfer().send(message)
