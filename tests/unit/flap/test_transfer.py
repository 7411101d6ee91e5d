"""The cloud's transfer state machine: the boot trace, scenarios A-G, and every rule.

Helpers speak in device terms: `send` hands one device packet to the cloud,
`uplink` sends a whole single-fragment message and commits it, `at(n)` gives
a transfer that expects the device's next packet to carry seq `n`.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nubes.flap import (
    FRAGMENT_LIMIT,
    MAX_REASSEMBLY,
    RESET,
    A,
    CreateSession,
    DownlinkDelivered,
    DownlinkSent,
    F,
    L,
    MessageReceived,
    Outcome,
    P,
    Packet,
    Restarted,
    Step,
    Transfer,
    UploadConfig,
    encode_download_config,
    encode_download_shell,
    encode_set_session,
    next_seq,
    open_envelope,
    parse_uplink,
    seal,
)

from .conftest import CLAIM_TOKEN

DATA = b"\x06" + bytes(8) + b"\xa1\x00\x01"


def send(transfer: Transfer, flags: int, seq: int, data: bytes = b"", now: float = 0.0) -> Step:
    return transfer.receive(Packet(flags, seq, data), now)


def uplink(transfer: Transfer, seq: int, message: bytes = DATA, now: float = 0.0) -> Packet:
    step = send(transfer, F | L, seq, message, now)
    assert (step.answer, step.outcome) == (None, Outcome.accepted)
    assert step.events[-1] == MessageReceived(message)
    return transfer.commit(now)


def at(n: int, max_fragment: int = 494) -> Transfer:
    """A transfer whose next expected device seq is `n` (reached with polls)."""
    transfer = Transfer(max_fragment)
    if n == 0:
        return transfer
    seq = 0
    if n % 2:  # one delivered downlink leaves the counter odd
        transfer.offer("warm-up", b"\x86")
        send(transfer, P, 0)
        send(transfer, A, 2)
        seq = 3
    while seq != n:
        assert send(transfer, P, seq).answer == Packet(F | L, next_seq(seq))
        seq = next_seq(seq, 2)
    return transfer


def n_plus(n: int, k: int) -> int:
    return next_seq(n, k)


# -- the recorded CHESTER boot ---------------------------------------------------------


def test_boot_trace_is_answered_byte_for_byte(boot_trace: list[tuple[bytes, bytes | None]]) -> None:
    transfer = Transfer(FRAGMENT_LIMIT["base64"])
    for number, (datagram, expected) in enumerate(boot_trace):
        envelope = open_envelope(datagram)
        step = transfer.receive(Packet.decode(envelope.packet), float(number))
        answer = step.answer
        for event in step.events:
            if isinstance(event, MessageReceived):
                offer_what_the_cloud_offered(transfer, parse_uplink(event.message))
                answer = transfer.commit(float(number))
        if step.answer == Packet(F | L, 11):  # the empty poll; a shell command is queued next
            commands = ["app config show", "app config interval-sample"]
            shell_id = bytes.fromhex("018dd0f29d0175f2abaf092b8d2f9f2b")
            transfer.offer("shell", encode_download_shell(commands, shell_id))
        sealed = None if answer is None else seal(CLAIM_TOKEN, envelope.serial, answer.encode())
        assert sealed == expected, f"datagram {number}: {answer}"


def offer_what_the_cloud_offered(transfer: Transfer, uplink: object) -> None:
    """Between receive and commit, as the gateway does, so that the ack carries P."""
    if isinstance(uplink, CreateSession):
        message = encode_set_session(
            0x64BA538F,
            0x64BA538E,
            device_id="0188d85c-8962-786f-c985-a67fee7bb144",
            device_name="test-device-s0-985",
        )
        transfer.offer("session", message)
    elif isinstance(uplink, UploadConfig):
        lines = [
            "app config interval-sample 10",
            "app config interval-report 60",
            "app config backup-report-connected true",
        ]
        transfer.offer("config", encode_download_config(lines))


def test_session_start_headers(vectors: dict[str, list[str]]) -> None:
    transfer = Transfer(494)
    assert send(transfer, F | L, 0, b"\x00\xa0").answer is None
    transfer.offer("session", encode_set_session(1, 0))
    answers = [transfer.commit(0.0), send(transfer, P, 2).answer]
    assert send(transfer, A, 4).answer is None
    headers = [Packet(F | L, 0), answers[0], Packet(P, 2), answers[1], Packet(A, 4)]
    assert [p.encode()[:2].hex() for p in headers if p] == vectors["session_start_headers"]


# -- scenarios A-G of the documentation ------------------------------------------------

SEQUENCES = [0, 7, 4094]


@pytest.mark.parametrize("n", SEQUENCES)
def test_scenario_a_single_fragment_uplink(n: int) -> None:
    transfer = at(n)
    assert uplink(transfer, n) == Packet(A, n_plus(n, 1))
    assert send(transfer, P, n_plus(n, 2)).answer == Packet(F | L, n_plus(n, 3))


@pytest.mark.parametrize("n", SEQUENCES)
def test_scenario_b_multi_fragment_uplink(n: int) -> None:
    transfer = at(n)
    assert send(transfer, F, n, b"\x06ab").answer == Packet(A, n_plus(n, 1))
    assert send(transfer, 0, n_plus(n, 2), b"cd").answer == Packet(A, n_plus(n, 3))
    last = send(transfer, L, n_plus(n, 4), b"ef")
    assert last.answer is None
    assert last.events == (MessageReceived(b"\x06abcdef"),)
    assert transfer.commit(0.0) == Packet(A, n_plus(n, 5))


@pytest.mark.parametrize("n", SEQUENCES)
def test_scenario_c_single_fragment_downlink_waiting(n: int) -> None:
    transfer = at(n)
    assert send(transfer, F | L, n, DATA).answer is None
    transfer.offer("d1", b"\x81" + bytes(8))
    assert transfer.commit(0.0) == Packet(A | P, n_plus(n, 1))
    poll = send(transfer, P, n_plus(n, 2))
    assert poll.answer == Packet(F | L, n_plus(n, 3), b"\x81" + bytes(8))
    assert poll.events == (DownlinkSent("d1", 1),)
    ack = send(transfer, A, n_plus(n, 4))
    assert (ack.answer, ack.events) == (None, (DownlinkDelivered("d1"),))
    assert not transfer.waiting


@pytest.mark.parametrize("n", SEQUENCES)
def test_scenario_d_multi_fragment_downlink_waiting(n: int) -> None:
    transfer = at(n, max_fragment=4)
    message = b"\x82\x00abcdefgh"
    transfer.offer("d1", message)
    assert uplink(transfer, n) == Packet(A | P, n_plus(n, 1))
    assert send(transfer, P, n_plus(n, 2)).answer == Packet(F, n_plus(n, 3), message[:4])
    assert send(transfer, A, n_plus(n, 4)).answer == Packet(0, n_plus(n, 5), message[4:8])
    assert send(transfer, A, n_plus(n, 6)).answer == Packet(L, n_plus(n, 7), message[8:])
    last = send(transfer, A, n_plus(n, 8))
    assert (last.answer, last.events) == (None, (DownlinkDelivered("d1"),))


@pytest.mark.parametrize("n", SEQUENCES)
def test_scenario_e_poll_without_downlink(n: int) -> None:
    step = send(at(n), P, n)
    assert (step.answer, step.outcome, step.events) == (
        Packet(F | L, n_plus(n, 1)),
        Outcome.accepted,
        (),
    )


@pytest.mark.parametrize("n", SEQUENCES)
def test_scenario_f_poll_single_fragment_downlink(n: int) -> None:
    transfer = at(n)
    transfer.offer("d1", b"\x86data")
    assert send(transfer, P, n).answer == Packet(F | L, n_plus(n, 1), b"\x86data")
    assert send(transfer, A, n_plus(n, 2)).events == (DownlinkDelivered("d1"),)


@pytest.mark.parametrize("n", SEQUENCES)
def test_scenario_g_poll_two_single_fragment_downlinks(n: int) -> None:
    transfer = at(n)
    transfer.offer("d1", b"\x86one")
    transfer.offer("d2", b"\x86two")
    assert send(transfer, P, n).answer == Packet(F | L | P, n_plus(n, 1), b"\x86one")
    second = send(transfer, A | P, n_plus(n, 2))
    assert second.answer == Packet(F | L, n_plus(n, 3), b"\x86two")
    assert second.events == (DownlinkDelivered("d1"), DownlinkSent("d2", 1))
    assert send(transfer, A, n_plus(n, 4)).events == (DownlinkDelivered("d2"),)
    assert transfer.queued_ids == ()


def test_last_fragment_of_a_multi_fragment_downlink_carries_p_when_another_waits() -> None:
    transfer = at(2, max_fragment=3)
    transfer.offer("d1", b"\x82abcd")
    transfer.offer("d2", b"\x82x")
    assert send(transfer, P, 2).answer == Packet(F, 3, b"\x82ab")
    assert send(transfer, A, 4).answer == Packet(L | P, 5, b"cd")


def test_ack_with_poll_and_nothing_left_gets_an_empty_answer() -> None:
    transfer = at(2)
    transfer.offer("d1", b"\x86one")
    send(transfer, P, 2)
    step = send(transfer, A | P, 4)
    assert (step.answer, step.events) == (Packet(F | L, 5), (DownlinkDelivered("d1"),))


# -- delivery when the last ack is lost ------------------------------------------------


def test_next_packet_continuing_the_sequence_confirms_the_delivery() -> None:
    transfer = at(2)
    transfer.offer("d1", b"\x86one")
    send(transfer, P, 2)  # answered at 3; the device's ack at 4 is lost
    step = send(transfer, F | L, 5, DATA)
    assert step.events == (DownlinkDelivered("d1"), MessageReceived(DATA))
    assert transfer.commit(0.0) == Packet(A, 6)


def test_device_continuing_without_ack_confirms_the_delivery() -> None:
    transfer = at(2)
    transfer.offer("d1", b"\x86one")
    send(transfer, P, 2)
    step = send(transfer, P, 4)
    assert (step.answer, step.events) == (Packet(F | L, 5), (DownlinkDelivered("d1"),))


def test_unfinished_downlink_is_offered_again_on_the_next_poll() -> None:
    transfer = at(2, max_fragment=2)
    transfer.offer("d1", b"\x86abc")
    send(transfer, P, 2)  # first fragment at 3; the device gives up
    step = send(transfer, P, 0)
    assert step.answer == Packet(F, 1, b"\x86a")
    assert step.events == (Restarted(), DownlinkSent("d1", 2))


# -- sequence rules --------------------------------------------------------------------


def test_fresh_transfer_resets_a_device_that_does_not_start_at_zero() -> None:
    transfer = Transfer(494)
    step = send(transfer, F | L, 42, DATA)
    assert (step.answer, step.outcome) == (RESET, Outcome.reset)
    assert uplink(transfer, 0) == Packet(A, 1)


def test_packet_ahead_gets_a_reset_and_changes_nothing() -> None:
    transfer = at(10)
    step = send(transfer, P, 11)
    assert (step.answer, step.outcome, step.reason) == (RESET, Outcome.reset, "seq 11 ahead of 10")
    assert send(transfer, P, 10).answer == Packet(F | L, 11)


@pytest.mark.parametrize("behind", [1, 2, 2047])
def test_packet_behind_is_stale_and_ignored(behind: int) -> None:
    transfer = at(4094)
    old = next_seq(4094, 4095 - behind)
    step = send(transfer, F | L, old, DATA)
    assert (step.answer, step.outcome, step.events) == (None, Outcome.stale, ())
    assert send(transfer, P, 4094).answer == Packet(F | L, 4095)


def test_more_than_half_the_ring_behind_counts_as_ahead() -> None:
    transfer = at(4094)
    assert send(transfer, P, next_seq(4094, 4095 - 2048)).answer == RESET


def test_sequence_wraps_from_4095_to_1() -> None:
    transfer = at(4094)
    assert send(transfer, F, 4094, b"\x06a").answer == Packet(A, 4095)
    assert send(transfer, 0, 1, b"b").answer == Packet(A, 2)
    assert send(transfer, L, 3, b"c").events == (MessageReceived(b"\x06abc"),)
    assert transfer.commit(0.0) == Packet(A, 4)


def test_wrap_after_a_silent_ack() -> None:
    transfer = at(4093)
    transfer.offer("d1", b"\x86x")
    send(transfer, P, 4093)  # answered at 4094
    assert send(transfer, A, 4095).answer is None
    assert send(transfer, P, 1).answer == Packet(F | L, 2)


def test_seq_zero_discards_an_unfinished_uplink() -> None:
    transfer = at(6)
    send(transfer, F, 6, b"\x06part")
    step = send(transfer, F | L, 0, DATA)
    assert step.events == (Restarted(), MessageReceived(DATA))
    assert transfer.commit(0.0) == Packet(A, 1)


def test_seq_zero_confirms_a_fully_sent_downlink_first() -> None:
    transfer = at(6)
    transfer.offer("d1", b"\x82\x00\x80")
    send(transfer, P, 6)  # the last (only) fragment is out, no ack yet
    step = send(transfer, P, 0)
    assert step.events == (DownlinkDelivered("d1", assumed=True),)
    assert step.answer == Packet(F | L, 1)


def test_seq_zero_in_idle_reports_nothing() -> None:
    transfer = at(6)
    assert send(transfer, P, 0).events == ()


def test_invalid_seq_zero_packet_changes_nothing() -> None:
    transfer = at(6)
    send(transfer, F, 6, b"\x06a")
    assert send(transfer, A, 0).outcome == Outcome.invalid
    assert send(transfer, L, 8, b"b").events == (MessageReceived(b"\x06ab"),)


# -- repeats -----------------------------------------------------------------------------


def test_every_second_repeat_is_answered_from_the_cache() -> None:
    transfer = at(8)
    ack = uplink(transfer, 8)
    repeats = [send(transfer, F | L, 8, DATA, now=float(i)) for i in range(1, 5)]
    assert [step.answer for step in repeats] == [None, ack, None, ack]
    assert all(step.outcome == Outcome.duplicate and not step.events for step in repeats)
    assert repeats[0].reason == "repeat 1, not answered"


def test_repeat_of_a_packet_without_answer_stays_unanswered() -> None:
    transfer = at(8)
    transfer.offer("d1", b"\x86x")
    send(transfer, P, 8)
    send(transfer, A, 10)
    assert [send(transfer, A, 10).answer for _ in range(4)] == [None] * 4


def test_repeat_gets_the_cached_answer_even_when_things_changed() -> None:
    transfer = at(8)
    empty = send(transfer, P, 8).answer
    transfer.offer("d1", b"\x86x")
    send(transfer, P, 8)
    assert send(transfer, P, 8).answer == empty


def test_repeat_of_a_first_packet_is_not_a_new_exchange() -> None:
    transfer = Transfer(494)
    uplink(transfer, 0)
    send(transfer, F | L, 0, DATA)
    step = send(transfer, F | L, 0, DATA)
    assert (step.answer, step.events) == (Packet(A, 1), ())


def test_repeating_for_more_than_60_seconds_gets_a_reset() -> None:
    transfer = at(8)
    uplink(transfer, 8, now=100.0)
    assert send(transfer, F | L, 8, DATA, now=160.0).outcome == Outcome.duplicate
    step = send(transfer, F | L, 8, DATA, now=160.5)
    assert (step.answer, step.outcome) == (RESET, Outcome.reset)
    assert send(transfer, F | L, 8, DATA, now=161.0).outcome == Outcome.stale
    assert send(transfer, P, 10, now=161.0).answer == Packet(F | L, 11)


def test_after_the_repeat_reset_the_restart_is_processed_afresh() -> None:
    transfer = Transfer(494, repeat_reset_seconds=5.0)
    uplink(transfer, 0, now=0.0)
    assert send(transfer, F | L, 0, DATA, now=6.0).answer == RESET
    assert send(transfer, F | L, 0, DATA, now=7.0).events == (MessageReceived(DATA),)


# -- size limits and invalid packets ---------------------------------------------------------


def test_reassembly_accepts_16384_bytes() -> None:
    transfer = at(2)
    message = bytes(range(256)) * 64  # 16384 bytes: the type byte and a 16383-byte value
    chunks = [message[i : i + 1000] for i in range(0, len(message), 1000)]
    seq = 2
    for index, chunk in enumerate(chunks):
        flags = (F if index == 0 else 0) | (L if index == len(chunks) - 1 else 0)
        step = send(transfer, flags, seq, chunk)
        seq = next_seq(seq, 2)
    assert step.events == (MessageReceived(message),)


def test_reassembly_over_the_limit_is_invalid_and_dropped() -> None:
    transfer = at(2)
    send(transfer, F, 2, bytes(1000))
    seq = 4
    for _ in range(15):
        assert send(transfer, 0, seq, bytes(1000)).outcome == Outcome.accepted
        seq = next_seq(seq, 2)
    step = send(transfer, L, seq, bytes(MAX_REASSEMBLY - 16000 + 1))
    assert (step.answer, step.outcome) == (None, Outcome.invalid)
    assert step.reason == "message over 16384 bytes, dropped"
    assert send(transfer, L, seq, b"x").reason == "[xLxx] cannot start an exchange"


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (Packet(A, 2), "[xxAx] cannot start an exchange"),
        (Packet(L, 2, b"x"), "[xLxx] cannot start an exchange"),
        (Packet(0, 2, b"x"), "[xxxx] cannot start an exchange"),
        (Packet(F | L | P, 2, b"x"), "[FLxP] cannot start an exchange"),
        (Packet(F, 2), "fragment without data"),
        (Packet(P, 2, b"x"), "poll with data"),
    ],
)
def test_packets_that_cannot_start_an_exchange(packet: Packet, reason: str) -> None:
    transfer = at(2)
    step = transfer.receive(packet, 0.0)
    assert (step.answer, step.outcome, step.reason) == (None, Outcome.invalid, reason)
    assert send(transfer, P, 2).answer == Packet(F | L, 3)


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (Packet(F, 4, b"x"), "[Fxxx] during an uplink"),
        (Packet(P, 4), "[xxxP] during an uplink"),
        (Packet(A, 4), "[xxAx] during an uplink"),
        (Packet(0, 4), "fragment without data"),
    ],
)
def test_packets_that_do_not_fit_an_uplink(packet: Packet, reason: str) -> None:
    transfer = at(2)
    send(transfer, F, 2, b"\x06a")
    step = transfer.receive(packet, 0.0)
    assert (step.answer, step.outcome, step.reason) == (None, Outcome.invalid, reason)
    assert send(transfer, L, 4, b"b").events == (MessageReceived(b"\x06ab"),)


@pytest.mark.parametrize("packet", [Packet(P, 4), Packet(A, 4, b"x"), Packet(F | L, 4, b"x")])
def test_packets_that_do_not_fit_a_downlink(packet: Packet) -> None:
    transfer = at(2, max_fragment=2)
    transfer.offer("d1", b"\x86abc")
    send(transfer, P, 2)
    step = transfer.receive(packet, 0.0)
    assert (step.answer, step.outcome) == (None, Outcome.invalid)
    assert step.reason.endswith("while a downlink is sent")
    assert send(transfer, A, 4).answer == Packet(L, 5, b"bc")


# -- two-phase completion ----------------------------------------------------------------------


def test_receive_while_awaiting_commit_is_refused() -> None:
    transfer = at(2)
    send(transfer, F | L, 2, DATA)
    assert transfer.awaiting_commit
    with pytest.raises(RuntimeError, match="awaits commit"):
        send(transfer, F | L, 2, DATA)


def test_commit_and_abandon_need_a_completed_uplink() -> None:
    transfer = at(2)
    with pytest.raises(RuntimeError):
        transfer.commit(0.0)
    with pytest.raises(RuntimeError):
        transfer.abandon()


def test_abandoned_uplink_is_processed_again_when_repeated() -> None:
    transfer = at(2)
    send(transfer, F | L, 2, DATA)
    transfer.abandon()
    step = send(transfer, F | L, 2, DATA)
    assert step.events == (MessageReceived(DATA),)
    assert transfer.commit(0.0) == Packet(A, 3)


def test_abandoned_last_fragment_keeps_the_earlier_ones() -> None:
    transfer = at(2)
    send(transfer, F, 2, b"\x06a")
    send(transfer, L, 4, b"b")
    transfer.abandon()
    assert send(transfer, L, 4, b"b").events == (MessageReceived(b"\x06ab"),)


def test_abandoned_first_packet_after_a_restart() -> None:
    transfer = at(6)
    send(transfer, F | L, 0, DATA)
    transfer.abandon()
    assert send(transfer, F | L, 0, DATA).events == (MessageReceived(DATA),)


def test_commit_sets_p_for_what_waits_at_that_moment() -> None:
    transfer = at(2)
    transfer.offer("d1", b"\x86x")
    send(transfer, F | L, 2, DATA)
    transfer.withdraw("d1")
    assert transfer.commit(0.0) == Packet(A, 3)


# -- the downlink queue ---------------------------------------------------------------------------


def test_offer_ignores_an_id_already_queued_and_can_go_first() -> None:
    transfer = Transfer(494)
    transfer.offer("a", b"\x86a")
    transfer.offer("b", b"\x86b")
    transfer.offer("a", b"\x86other")
    transfer.offer("s", b"\x80s", first=True)
    assert transfer.queued_ids == ("s", "a", "b")
    assert send(transfer, P, 0).answer == Packet(F | L | P, 1, b"\x80s")


@pytest.mark.parametrize("message", [b"", bytes(MAX_REASSEMBLY + 1)])
def test_offer_refuses_empty_or_oversized_downlinks(message: bytes) -> None:
    with pytest.raises(ValueError, match="a downlink has"):
        Transfer(494).offer("x", message)


def test_withdrawn_downlink_is_not_offered() -> None:
    transfer = at(2)
    transfer.offer("a", b"\x86a")
    transfer.withdraw("a")
    transfer.withdraw("unknown")
    assert not transfer.waiting
    assert send(transfer, P, 2).answer == Packet(F | L, 3)


def test_downlink_withdrawn_on_the_wire_is_finished_and_reported() -> None:
    transfer = at(2, max_fragment=2)
    transfer.offer("a", b"\x86abc")
    send(transfer, P, 2)
    transfer.withdraw("a")
    assert send(transfer, A, 4).answer == Packet(L, 5, b"bc")
    assert send(transfer, A, 6).events == (DownlinkDelivered("a"),)


def test_downlink_fragments_respect_the_envelope_limit() -> None:
    transfer = at(2, max_fragment=FRAGMENT_LIMIT["dtls"])
    message = bytes(range(256)) * 3
    transfer.offer("a", message)
    seq, received = 2, b""
    while True:
        answer = send(transfer, P if seq == 2 else A, seq).answer
        assert answer is not None
        assert len(answer.data) <= 300
        received += answer.data
        seq = next_seq(answer.seq)
        if answer.flags & L:
            break
    assert received == message


# -- what another process may know better (several gateways) ----------------------------


def test_a_fully_sent_downlink_is_confirmed_unseen_by_anything_but_its_ack() -> None:
    transfer = at(6)
    transfer.offer("d1", b"\x82\x00\x80")
    send(transfer, P, 6)  # the last (only) fragment is out at 7
    assert not transfer.confirms_unseen(Packet(A, 8))
    assert not transfer.confirms_unseen(Packet(P, 6))  # a repeat of the poll
    assert transfer.confirms_unseen(Packet(P, 8))
    assert transfer.confirms_unseen(Packet(F | L, 0, DATA))


def test_seq_zero_in_the_middle_of_an_uplink_is_unseen_unless_a_repeat() -> None:
    transfer = Transfer(494)
    send(transfer, F, 0, b"\x06part")  # the last packet has seq 0 itself
    assert not transfer.confirms_unseen(Packet(F, 0, b"\x06part"))
    assert transfer.confirms_unseen(Packet(F, 0, b"\x06other"))
    assert transfer.confirms_unseen(Packet(F | L, 0, DATA))


def test_packets_in_sequence_or_from_idle_confirm_nothing_unseen() -> None:
    transfer = at(6)
    assert not transfer.confirms_unseen(Packet(P, 0))
    assert not transfer.confirms_unseen(Packet(F | L, 6, DATA))
    send(transfer, F, 6, b"\x06part")
    assert not transfer.confirms_unseen(Packet(L, 8, DATA))


# -- any packet at all ------------------------------------------------------------------

packets = st.builds(
    Packet,
    st.integers(0, 15),
    st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 4094, 4095]) | st.integers(0, 4095),
    st.sampled_from([b"", b"\x06", DATA]) | st.binary(max_size=600),
)


@given(st.lists(st.tuples(packets, st.booleans(), st.booleans()), max_size=60))
def test_any_packets_get_a_reset_an_answer_with_seq_plus_one_or_nothing(
    script: list[tuple[Packet, bool, bool]],
) -> None:
    transfer = Transfer(7)
    for number, (packet, offer, keep) in enumerate(script):
        if offer:
            transfer.offer(number, bytes(number + 1))
        step = transfer.receive(packet, float(number))
        answer = step.answer
        if transfer.awaiting_commit:
            assert answer is None
            assert isinstance(step.events[-1], MessageReceived)
            answer = transfer.commit(0.0) if keep else None
            if not keep:
                transfer.abandon()
        if answer is not None:
            assert answer == RESET or answer.seq == next_seq(packet.seq)
            assert not (answer.flags & A and answer.data)
            assert len(answer.data) <= 7
