"""Wall clock and UUIDv7 ids."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from uuid import UUID

from autokey.ports.system import Clock, IdGenerator


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)


class Uuid7Ids(IdGenerator):
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, then a 74-bit counter-or-random tail.

    Within one millisecond the random tail is incremented instead of redrawn, so ids from
    one process are strictly increasing (they serve as keyset cursors).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._tail = 0

    def new_id(self) -> UUID:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._last_ms:
                self._last_ms = ms
                self._tail = int.from_bytes(os.urandom(10)) >> 8  # 72 random bits
            else:
                self._tail += 1  # same (or earlier) millisecond: stay monotonic
            ms, tail = self._last_ms, self._tail
        rand_a = (tail >> 62) & 0xFFF
        rand_b = tail & ((1 << 62) - 1)
        value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
        return UUID(int=value)
