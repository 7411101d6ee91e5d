"""The dispatcher's per-callback share of held deliveries."""

from __future__ import annotations

import uuid

from nubes.callbacks.holds import Holds


def test_a_callback_fills_its_share_and_the_total_caps_all() -> None:
    holds = Holds(per_callback=4, total=6)
    one, two = uuid.uuid4(), uuid.uuid4()
    firsts = [uuid.uuid4() for _ in range(4)]
    for delivery_id in firsts:
        assert holds.has_room(one)
        holds.hold(delivery_id, one)
    assert not holds.has_room(one)
    assert holds.has_room(two)
    holds.hold(uuid.uuid4(), two)
    holds.hold(uuid.uuid4(), two)
    assert not holds.has_room(two)  # the total
    assert (len(holds), holds.free(), holds.at_least(2)) == (6, 0, [one, two])
    assert firsts[0] in holds


def test_release_tells_when_a_claim_would_find_room() -> None:
    holds = Holds(per_callback=4, total=100)
    callback = uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(4)]
    for delivery_id in ids:
        holds.hold(delivery_id, callback)
    assert [holds.release(delivery_id) for delivery_id in ids] == [False, False, True, False]
    assert holds.release(uuid.uuid4()) is False  # not held: nothing changes
    assert len(holds) == 0
    assert holds.at_least(1) == []
