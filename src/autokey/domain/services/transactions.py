"""Running one step in a transaction, again when keys were merely busy."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from autokey.domain.model.errors import StockBusy
from autokey.ports.store import Store, UnitOfWork

T = TypeVar("T")

BUSY_RETRIES = 12
BUSY_BASE_S = 0.005
BUSY_CAP_S = 0.2

Step = Callable[[UnitOfWork], Awaitable[T]]


async def transact(store: Store, step: Step[T]) -> T:
    """Run `step` in one transaction. When it raises StockBusy (the keys it wanted are locked
    by other open transactions, not sold), roll back, wait with full jitter and run it again;
    StockBusy escapes only after BUSY_RETRIES attempts (~1 s in total)."""
    for attempt in range(BUSY_RETRIES):
        try:
            async with store.transaction() as tx:
                return await step(tx)
        except StockBusy:
            if attempt == BUSY_RETRIES - 1:
                raise
            await asyncio.sleep(random.uniform(0, min(BUSY_CAP_S, BUSY_BASE_S * 2**attempt)))  # noqa: S311
    raise AssertionError("unreachable")
