"""The in-flight lease of Idempotency-Keys, on every store: a request whose effect and
clean-up both failed holds its key only until the lease ends, and a retry then runs."""

from __future__ import annotations

import pytest

from autokey.domain.model.errors import IdempotencyInFlight, StoreUnavailable
from autokey.domain.model.idempotency import IdempotencyState, StoredResponse
from autokey.domain.services.idempotency import IdempotencyService
from autokey.ports.store import Store, UnitOfWork
from tests import builders as b
from tests.conftest import FakeClock

LEASE_S = 10
SCOPE, KEY, FINGERPRINT = "buyer:1", "retry-me", b"\x02" * 32


async def _outage(tx: UnitOfWork) -> StoredResponse:
    raise StoreUnavailable(store="test")


async def test_a_failed_request_holds_its_key_only_until_the_lease_ends(
    store: Store, clock: FakeClock
) -> None:
    service = IdempotencyService(store, clock, lease_s=LEASE_S)
    pool = b.pool()
    ran: list[int] = []

    async def create_pool(tx: UnitOfWork) -> StoredResponse:
        ran.append(1)
        await tx.pools.add(pool)
        return StoredResponse(status=201, body=b"{}")

    # The database failed during the effect; no clean-up is attempted (the lease covers it).
    with pytest.raises(StoreUnavailable):
        await service.run(SCOPE, KEY, FINGERPRINT, _outage)
    with pytest.raises(IdempotencyInFlight) as busy:
        await service.run(SCOPE, KEY, FINGERPRINT, create_pool)
    assert busy.value.retry_after_s == LEASE_S
    clock.advance(LEASE_S - 0.5)
    with pytest.raises(IdempotencyInFlight) as still:
        await service.run(SCOPE, KEY, FINGERPRINT, create_pool)
    assert still.value.retry_after_s == 1
    assert ran == []

    clock.advance(0.5)  # the lease has ended exactly now: a retry takes over
    first = await service.run(SCOPE, KEY, FINGERPRINT, create_pool)
    again = await service.run(SCOPE, KEY, FINGERPRINT, create_pool)
    assert (first.replayed, again.replayed, again.response) == (False, True, first.response)
    assert ran == [1]
    async with store.transaction() as tx:
        assert await tx.pools.get(pool.id) is not None
        record = await tx.idempotency.get(SCOPE, KEY)
    assert record is not None
    assert record.state is IdempotencyState.COMPLETED


async def test_a_refused_request_frees_its_key_at_once(store: Store, clock: FakeClock) -> None:
    service = IdempotencyService(store, clock, lease_s=LEASE_S)

    async def refused(tx: UnitOfWork) -> StoredResponse:
        raise ValueError("the rules said no")

    async def accepted(tx: UnitOfWork) -> StoredResponse:
        return StoredResponse(status=200, body=b"{}")

    with pytest.raises(ValueError, match="said no"):
        await service.run(SCOPE, KEY, FINGERPRINT, refused)
    outcome = await service.run(SCOPE, KEY, FINGERPRINT, accepted)
    assert outcome.replayed is False
