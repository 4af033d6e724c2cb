"""Group commit: concurrent calls of one kind share one transaction.

While the batches of a kind are in their transactions (up to two at a time), the calls that
arrive wait together, and the next batch takes them all (up to a size). At 32 concurrent
buyers, ten orders then cost one transaction and a handful of statements instead of ten of
each (ADR 0032). A call that waits alone is a batch of one, so a quiet server answers as fast
as before.

A batch answers each call with its result, or with None for a call the batch could not
complete as the call alone would (an error to report, stock short, a case the batch does not
handle); that call then runs alone, after the batch, in the caller's own task. A batch that
fails as a whole is rolled back and each of its calls runs alone, so one call's failure never
fails its neighbours; only an error every call would meet alone (the store unreachable) is
every call's answer at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from autokey.domain.model.errors import StaleRead, StockBusy, StoreUnavailable
from autokey.domain.services.transactions import transact
from autokey.ports.store import Store, UnitOfWork

C = TypeVar("C")
R = TypeVar("R")

MAX_BATCH = 64
"""Calls per batch: bounds a batch's statements and how long its locks are held."""

LANES = 2
"""Batches of one kind in flight at once, by default: while one waits for the database, the
next can start. At 32 clients on one worker two made about 6 % more order flows per second
than one, at less server CPU per flow; three and four were no better than two
(docs/benchmarks.md). `serve --workers N` gives each of several workers one lane (ADR 0032)."""


class GroupCommit(Generic[C, R]):
    """Runs calls through `together` in batches, and through `alone` when a batch says so.

    `together(calls)` runs a batch in one transaction and returns, per call, its result or
    None. For a batch of one, what it raises is that call's answer; for a larger batch, an
    exception runs every call alone."""

    def __init__(
        self,
        together: Callable[[Sequence[C]], Awaitable[Sequence[R | None]]],
        alone: Callable[[C], Awaitable[R]],
        *,
        limit: int = MAX_BATCH,
        lanes: int = LANES,
        enabled: bool = True,
        observe: Callable[[int], None] | None = None,
        shared: tuple[type[Exception], ...] = (),
    ) -> None:
        """With `enabled` false, every call runs alone at once. `observe` is told the size
        of each batch as it starts (metrics). A `shared` exception raised by a batch is every
        call's answer instead (an outage: running each alone would only wait for it again)."""
        self._together, self._alone, self._limit, self._lanes = together, alone, limit, lanes
        self._enabled, self._observe, self._shared = enabled, observe, shared
        self._waiting: list[tuple[C, asyncio.Future[R | None]]] = []
        self._draining: set[asyncio.Task[None]] = set()
        """The lanes at work: each drains batch after batch until no call waits."""
        self._last_size = 0
        """Calls in the latest batch: above one, the server is busy (see `_drain`)."""

    async def run(self, call: C) -> R:
        if not self._enabled:
            return await self._alone(call)
        future: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((call, future))
        if len(self._draining) < self._lanes:
            lane = asyncio.create_task(self._drain())
            self._draining.add(lane)
            lane.add_done_callback(self._draining.discard)  # also one cancelled unstarted
        result = await future
        return await self._alone(call) if result is None else result

    async def _drain(self) -> None:
        """Batch after batch until no call waits. A caller that went away before its batch
        began (its future cancelled) is left out: nothing was done for it.

        Under load (more than one call waiting, or the batch before had company) the drain
        first lets the event loop finish its current pass, so that the calls of requests
        already read in that pass join this batch instead of waiting for the next one (about
        8 calls per batch became about 11 at 32 clients; see docs/benchmarks.md). A lone call
        on a quiet server starts at once."""
        batch: list[tuple[C, asyncio.Future[R | None]]] = []
        try:
            while self._waiting:
                if len(self._waiting) > 1 or self._last_size > 1:
                    await asyncio.sleep(0)
                taken, self._waiting = self._waiting[: self._limit], self._waiting[self._limit :]
                batch = [(call, future) for call, future in taken if not future.done()]
                self._last_size = len(batch)
                if batch:
                    await self._run(batch)
        finally:
            self._draining.discard(asyncio.current_task())
            # Cancelled mid-batch (shutdown): so are its callers, and those still waiting
            # when no lane is left to take them.
            for _, future in batch:
                future.cancel()
            if not self._draining:
                for _, future in self._waiting:
                    future.cancel()
                self._waiting = []

    async def _run(self, batch: list[tuple[C, asyncio.Future[R | None]]]) -> None:
        results: Sequence[R | None]
        if self._observe is not None:
            self._observe(len(batch))
        try:
            results = await self._together([call for call, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, self._shared):
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            results = [None] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def grouped(
    store: Store,
    one: Callable[[UnitOfWork, C], Awaitable[R]],
    many: Callable[[UnitOfWork, Sequence[C]], Awaitable[Sequence[R | None]]],
    *,
    enabled: bool = True,
    lanes: int = LANES,
    observe: Callable[[int], None] | None = None,
) -> GroupCommit[C, R]:
    """A `GroupCommit` whose batches are transactions of `store`: `many` for a batch; `one`
    for a lone call, once, in an optimistic transaction (ADR 0040) (stock merely busy, or a
    read the store answered from a stale copy, is run again alone, outside the batch, so the
    next batch does not wait for it); `one` in `transact`, with its retries, for a call run
    alone. An unreachable store is every call's answer."""

    async def together(calls: Sequence[C]) -> Sequence[R | None]:
        try:
            if len(calls) == 1:
                async with store.transaction(optimistic=True) as tx:
                    return [await one(tx, calls[0])]
            async with store.transaction() as tx:
                return await many(tx, calls)
        except (StockBusy, StaleRead):
            return [None] * len(calls)

    async def alone(call: C) -> R:
        return await transact(store, lambda tx: one(tx, call))

    return GroupCommit(
        together,
        alone,
        enabled=enabled,
        lanes=lanes,
        observe=observe,
        shared=(StoreUnavailable,),
    )
