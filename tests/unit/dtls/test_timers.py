"""The deadline heap: one live entry per item, stale ones skipped and compacted."""

from __future__ import annotations

from dataclasses import dataclass

from nubes.dtls.timers import Timers


@dataclass(eq=False)
class Item:
    name: str
    timer_at: float | None = None


def test_due_returns_items_once_in_order_and_skips_moved_or_cancelled_ones() -> None:
    timers: Timers[Item] = Timers()
    a, b, c = Item("a"), Item("b"), Item("c")
    timers.schedule(a, 5.0)
    timers.schedule(b, 1.0)
    timers.schedule(c, 3.0)
    timers.schedule(a, 2.0)  # moved earlier: the 5.0 entry goes stale
    timers.cancel(c)
    assert timers.next() == 1.0
    assert [item.name for item in timers.due(10.0)] == ["b", "a"]
    assert timers.next() is None


def test_compact_drops_stale_entries() -> None:
    timers: Timers[Item] = Timers()
    items = [Item(str(i)) for i in range(10)]
    for i, item in enumerate(items):
        timers.schedule(item, float(i))
        timers.schedule(item, float(i) + 100)
    for item in items[:5]:
        timers.cancel(item)
    assert len(timers) == 20
    timers.compact()
    assert len(timers) == 5
    assert timers.next() == 105.0
