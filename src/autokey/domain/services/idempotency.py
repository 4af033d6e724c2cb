"""Idempotency-Key handling: first request runs, repeats replay its stored response.

The record is claimed in its own short transaction (so a concurrent duplicate sees it and
gets IdempotencyInFlight), and completed in the same transaction as the effect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import attrs

from autokey.domain.model.errors import (
    IdempotencyInFlight,
    IdempotencyKeyReused,
    InvalidInput,
)
from autokey.domain.model.idempotency import (
    IDEMPOTENCY_RETENTION_S,
    IN_FLIGHT_LEASE_S,
    MAX_KEY_LENGTH,
    IdempotencyRecord,
    IdempotencyState,
    StoredResponse,
)
from autokey.domain.services.transactions import transact
from autokey.ports.store import Store, UnitOfWork
from autokey.ports.system import Clock

Effect = Callable[[UnitOfWork], Awaitable[StoredResponse]]


@attrs.frozen(kw_only=True)
class Outcome:
    response: StoredResponse
    replayed: bool


class IdempotencyService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store, self._clock = store, clock

    async def run(self, scope: str, key: str, fingerprint: bytes, effect: Effect) -> Outcome:
        """Run `effect` once per (scope, key). Same key and fingerprint again: the stored
        response. Different fingerprint: IdempotencyKeyReused. While the first is still
        running: IdempotencyInFlight. If the effect raises, the key is freed for a retry."""
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            raise InvalidInput.of("Idempotency-Key", "invalid_idempotency_key")
        stored = await self._claim(scope, key, fingerprint)
        if stored is not None:
            return Outcome(response=stored, replayed=True)

        async def step(tx: UnitOfWork) -> StoredResponse:
            response = await effect(tx)
            await tx.idempotency.complete(scope, key, response)
            return response

        try:
            return Outcome(response=await transact(self._store, step), replayed=False)
        except BaseException:
            async with self._store.transaction() as tx:
                await tx.idempotency.delete(scope, key)
            raise

    async def _claim(self, scope: str, key: str, fingerprint: bytes) -> StoredResponse | None:
        now = self._clock.now()
        fresh = IdempotencyRecord(
            scope=scope,
            key=key,
            fingerprint=fingerprint,
            state=IdempotencyState.IN_FLIGHT,
            created_at=now,
            locked_until=now + timedelta(seconds=IN_FLIGHT_LEASE_S),
            expires_at=now + timedelta(seconds=IDEMPOTENCY_RETENTION_S),
        )
        async with self._store.transaction() as tx:
            if await tx.idempotency.insert(fresh):
                return None
            record = await tx.idempotency.get(scope, key, for_update=True)
            if record is None or not record.is_live(now):
                await tx.idempotency.replace(fresh)
                return None
            if record.is_locked(now):
                raise IdempotencyInFlight(resource="idempotency_key", id=key)
            if record.fingerprint != fingerprint:
                raise IdempotencyKeyReused(key=key)
            if record.response is not None:
                return record.response
            await tx.idempotency.replace(fresh)  # the first attempt died: take over
            return None

    async def purge(self) -> int:
        async with self._store.transaction() as tx:
            return await tx.idempotency.purge_expired(self._clock.now())
