"""An index of keys by the time they are due, for the dispatcher's retry scan.

The scan runs four times a second; with tens of thousands of deliveries waiting it must
not look at every one of them each time. A heap finds what is due in O(log n) per key; a
key set again or dropped leaves a stale heap entry, skipped when popped and cleared out
when stale entries outnumber live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable


class DueIndex:
    def __init__(self, entries: Iterable[tuple[Hashable, float]] = ()) -> None:
        self._due: dict[Hashable, float] = dict(entries)
        self._heap: list[tuple[float, Hashable]] = [(at, key) for key, at in self._due.items()]
        heapq.heapify(self._heap)

    def set(self, key: Hashable, at: float) -> None:
        """Index ``key`` as due at ``at`` (replacing any earlier time)."""
        if self._due.get(key) == at:
            return
        self._due[key] = at
        heapq.heappush(self._heap, (at, key))
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._heap = [(t, k) for k, t in self._due.items()]
            heapq.heapify(self._heap)

    def discard(self, key: Hashable) -> None:
        self._due.pop(key, None)

    def pop_due(self, now: float) -> list[Hashable]:
        """Remove and return the keys due at ``now``, earliest first."""
        due: list[Hashable] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if self._due.get(key) == at:
                del self._due[key]
                due.append(key)
        return due

    def get(self, key: Hashable) -> float | None:
        return self._due.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)
