"""The deliveries one dispatcher holds (leased to it), counted per callback.

The counts are the dispatcher's isolation: a callback may hold at most
`per_callback` deliveries here, all callbacks together at most `total`. A
hanging endpoint fills its own share and nothing more, so the others keep
being claimed and sent.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

__all__ = ["Holds"]


class Holds:
    """Delivery id -> callback id, with counts; no I/O."""

    def __init__(self, per_callback: int, total: int) -> None:
        self.per_callback = per_callback
        self.total = total
        self._callback_of: dict[uuid.UUID, uuid.UUID] = {}
        self._count: defaultdict[uuid.UUID, int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self._callback_of)

    def __contains__(self, delivery_id: object) -> bool:
        return delivery_id in self._callback_of

    def ids(self) -> list[uuid.UUID]:
        return list(self._callback_of)

    def clear(self) -> None:
        self._callback_of.clear()
        self._count.clear()

    def has_room(self, callback_id: uuid.UUID) -> bool:
        return self._count[callback_id] < self.per_callback and len(self) < self.total

    def free(self) -> int:
        return self.total - len(self)

    def at_least(self, count: int) -> list[uuid.UUID]:
        """The callbacks holding `count` deliveries or more."""
        return [callback_id for callback_id, n in self._count.items() if n >= count]

    def hold(self, delivery_id: uuid.UUID, callback_id: uuid.UUID) -> None:
        self._callback_of[delivery_id] = callback_id
        self._count[callback_id] += 1

    def release(self, delivery_id: uuid.UUID) -> bool:
        """Forgets a delivery; True when that makes room for a claim.

        Only crossing half a callback's share (claims take half a share at a
        time) or the total's edge makes room: a claim after every small
        write would mostly find its callbacks still busy.
        """
        callback_id = self._callback_of.pop(delivery_id, None)
        if callback_id is None:
            return False
        left = self._count[callback_id] - 1
        if left > 0:
            self._count[callback_id] = left
        else:
            del self._count[callback_id]
        return left == self.per_callback // 2 - 1 or len(self) == self.total - 1
