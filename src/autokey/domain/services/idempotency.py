"""Idempotency-Key handling: first request runs, repeats replay its stored response.

The record is claimed in its own short transaction (so a concurrent duplicate sees it and
gets IdempotencyInFlight), and completed in the same transaction as the effect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import attrs

from autokey.domain.model.errors import (
    IdempotencyInFlight,
    InvalidInput,
    StoreUnavailable,
)
from autokey.domain.model.idempotency import (
    DEFAULT_LEASE_S,
    MAX_KEY_LENGTH,
    IdempotencyRecord,
    StoredResponse,
)
from autokey.domain.services.transactions import transact
from autokey.ports.store import Store, UnitOfWork
from autokey.ports.system import Clock

Effect = Callable[[UnitOfWork], Awaitable[StoredResponse | None]]
"""A request's effect and the response to store for it; None when there is nothing to store
yet (the work continues outside this transaction, and a repeat runs it again)."""


@attrs.frozen(kw_only=True)
class Outcome:
    response: StoredResponse | None
    """None when the effect returned None: nothing was stored and the key is free again."""
    replayed: bool


class IdempotencyService:
    def __init__(self, store: Store, clock: Clock, lease_s: int = DEFAULT_LEASE_S) -> None:
        self._store, self._clock, self._lease_s = store, clock, lease_s

    async def run(self, scope: str, key: str, fingerprint: bytes, effect: Effect) -> Outcome:
        """Run `effect` once per (scope, key). Same key and fingerprint again: the stored
        response. Different fingerprint: IdempotencyKeyReused. While the first is still
        running, within its lease: IdempotencyInFlight (with the seconds left). A request
        that crashed, or whose clean-up failed, holds the key only until its lease ends;
        a first request that outlives its lease is rolled back (IdempotencyInFlight), so
        the effect happens once. If the effect raises or returns None, the key is freed for
        a retry."""
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            raise InvalidInput.of("idempotency_key", "invalid_idempotency_key")
        claim, stored = await self._claim(scope, key, fingerprint)
        if stored is not None:
            return Outcome(response=stored, replayed=True)

        async def step(tx: UnitOfWork) -> StoredResponse | None:
            response = await effect(tx)
            if response is not None and not await tx.idempotency.complete(claim, response):
                raise IdempotencyInFlight(
                    resource="idempotency_key", id=key, retry_after_s=self._lease_s
                )
            return response

        try:
            response = await transact(self._store, step)
        except StoreUnavailable:
            raise  # a clean-up now would most likely wait on the same outage; the lease ends
        except BaseException:
            await self._release(claim)
            raise
        if response is None:
            await self._release(claim)
        return Outcome(response=response, replayed=False)

    async def _release(self, claim: IdempotencyRecord) -> None:
        with contextlib.suppress(StoreUnavailable):  # the lease frees it anyway
            async with self._store.transaction() as tx:
                await tx.idempotency.release(claim)

    async def _claim(
        self, scope: str, key: str, fingerprint: bytes
    ) -> tuple[IdempotencyRecord, StoredResponse | None]:
        """Hold the key (the claim), or the stored response to replay."""
        now = self._clock.now()
        fresh = IdempotencyRecord.claim(scope, key, fingerprint, now, self._lease_s)
        async with self._store.transaction() as tx:
            if await tx.idempotency.insert(fresh):
                return fresh, None
            record = await tx.idempotency.get(scope, key, for_update=True)
            stored = None if record is None else record.replay_for(fingerprint, now)
            if record is not None and stored is not None:
                return record, stored
            # A first attempt that died or outlived its lease can no longer complete: our
            # lease ends later than its lease did.
            await tx.idempotency.replace(fresh)
            return fresh, None

    async def purge(self) -> int:
        async with self._store.transaction() as tx:
            return await tx.idempotency.purge_expired(self._clock.now())
