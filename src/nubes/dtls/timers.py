"""A deadline heap with one live entry per item and lazy removal.

The server has one deadline per handshake (next retransmission or give-up)
and one per association (idle expiry). Deadlines move all the time (every
record pushes an idle expiry back), so entries are never updated in place:
each item remembers the time of its one live entry (`timer_at`), the heap
may hold stale entries for it, and `due()` skips those. `compact()` rebuilds
the heap when stale entries pile up, which keeps memory proportional to the
number of live items.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    timer_at: float | None


T = TypeVar("T", bound=Timed)


class Timers(Generic[T]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()

    def schedule(self, item: T, when: float) -> None:
        """Make `when` the item's deadline (unless it already is)."""
        if item.timer_at == when:
            return
        item.timer_at = when
        heapq.heappush(self._heap, (when, next(self._order), item))

    def cancel(self, item: T) -> None:
        item.timer_at = None

    def due(self, now: float) -> list[T]:
        """The items whose live deadline is at or before `now`, earliest first."""
        items: list[T] = []
        while self._heap and self._heap[0][0] <= now:
            when, _, item = heapq.heappop(self._heap)
            if item.timer_at == when:
                item.timer_at = None
                items.append(item)
        return items

    def next(self) -> float | None:
        """The earliest live deadline."""
        heap = self._heap
        while heap and heap[0][2].timer_at != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def compact(self) -> None:
        """Drop the stale entries."""
        self._heap = [entry for entry in self._heap if entry[2].timer_at == entry[0]]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)
