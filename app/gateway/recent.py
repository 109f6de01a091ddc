"""What a gateway process has read lately and may reuse for a few seconds: keys it has
checked and models' capacity. Each POST /v1/jobs otherwise opened a database session for
both before storing its job; with them at hand it opens only the one that stores it.

A revoked key therefore keeps working on a gateway for at most `seconds` (the setting
`gateway_cache_s`), and a miner that appears or goes stays unseen by the 503 check as long;
routing itself reads fresh rows on every attempt. Unknown keys are never kept.
"""

from __future__ import annotations

import threading
import time
from typing import Generic, Hashable, TypeVar

V = TypeVar("V")

MAX_ENTRIES = 10_000  # beyond this many, everything is forgotten at once (a flood of distinct keys)


class Recent(Generic[V]):
    """A value per key for `seconds` after it was put; 0 keeps nothing."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._values: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        entry = self._values.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: Hashable, value: V) -> V:
        if self.seconds > 0:
            with self._lock:
                if len(self._values) >= MAX_ENTRIES:
                    self._values.clear()
                self._values[key] = (time.monotonic() + self.seconds, value)
        return value
