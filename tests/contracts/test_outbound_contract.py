"""Contract of the outbound-webhook repositories: endpoints and the deliveries outbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs
import pytest

from autokey.domain.model.errors import NotFound
from autokey.domain.model.ids import DeliveryId
from autokey.domain.model.outbound import (
    EndpointStatus,
    SendOutcome,
)
from autokey.domain.model.pages import PageRequest
from autokey.ports.store import Store
from tests import builders as b


async def test_endpoints_round_trip_save_and_list_per_seller(store: Store) -> None:
    seller, other = b.seller(), b.seller()
    mine, others = [b.endpoint(seller), b.endpoint(seller)], [b.endpoint(other)]
    async with store.transaction() as tx:
        for e in [mine[0], *others, mine[1], b.endpoint()]:
            await tx.endpoints.add(e)
    mine[0].failed(b.T0)
    mine[0].failed(b.T0 + timedelta(days=3))
    async with store.transaction() as tx:
        await tx.endpoints.save(mine[0])
    async with store.transaction() as tx:
        assert await tx.endpoints.list_for_sellers([seller]) == mine
        both = await tx.endpoints.list_for_sellers([other, seller])
        assert both == sorted([*mine, *others], key=lambda e: e.id)
        assert await tx.endpoints.list_for_sellers([b.seller()]) == []
        assert (await tx.endpoints.get(mine[0].id)) == mine[0]
        assert mine[0].status is EndpointStatus.DISABLED
        assert await tx.endpoints.get(b.endpoint().id) is None


async def test_deliveries_round_trip_and_list_newest_first(store: Store) -> None:
    e = b.endpoint()
    sent = [b.delivery(e) for _ in range(3)]
    async with store.transaction() as tx:
        await tx.endpoints.add(e)
        await tx.deliveries.add(sent)
    sent[1].record(SendOutcome(status_code=204), None, b.T0, b.FixedRandom(0))
    async with store.transaction() as tx:
        await tx.deliveries.save(sent[1])
    async with store.transaction() as tx:
        assert await tx.deliveries.get(sent[1].id) == sent[1]
        first = await tx.deliveries.list_for_endpoint(e.id, PageRequest(limit=2))
        rest = await tx.deliveries.list_for_endpoint(e.id, PageRequest(after=first.next_after))
    assert [d.id for d in [*first.items, *rest.items]] == [d.id for d in reversed(sent)]


async def test_lease_takes_due_pending_unleased_deliveries_oldest_due_first(store: Store) -> None:
    e = b.endpoint()
    later, due, sooner, done = (
        b.delivery(e, 60),
        b.delivery(e, 0),
        b.delivery(e, -30),
        b.delivery(e),
    )
    done.record(SendOutcome(status_code=200), None, b.T0, b.FixedRandom(0))
    async with store.transaction() as tx:
        await tx.endpoints.add(e)
        await tx.deliveries.add([later, due, sooner, done])
    lease_end = b.T0 + timedelta(seconds=60)
    async with store.transaction() as tx:
        leased = await tx.deliveries.lease_due(b.T0, lease_end, limit=10)
    assert [d.id for d in leased] == [sooner.id, due.id]
    assert all(d.leased_until == lease_end for d in leased)
    async with store.transaction() as tx:
        assert await tx.deliveries.lease_due(b.T0 + timedelta(seconds=30), lease_end, 10) == []
        again = await tx.deliveries.lease_due(lease_end, lease_end + timedelta(seconds=60), 10)
    # after the lease ends (a crashed dispatcher), the same deliveries are due again
    assert [d.id for d in again] == [sooner.id, due.id, later.id]


async def test_concurrent_leases_never_hand_out_one_delivery_twice(store: Store) -> None:
    e = b.endpoint()
    pending = [b.delivery(e) for _ in range(20)]
    async with store.transaction() as tx:
        await tx.endpoints.add(e)
        await tx.deliveries.add(pending)

    async def lease() -> list[DeliveryId]:
        async with store.transaction() as tx:
            got = await tx.deliveries.lease_due(b.T0, b.T0 + timedelta(seconds=60), limit=15)
            await asyncio.sleep(0.05)  # hold the transaction while the other one runs
            return [d.id for d in got]

    first, second = await asyncio.gather(lease(), lease())
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(d.id for d in pending)


async def test_an_unleased_delivery_saved_keeps_its_schedule(store: Store) -> None:
    e = b.endpoint()
    d = b.delivery(e)
    async with store.transaction() as tx:
        await tx.endpoints.add(e)
        await tx.deliveries.add([d])
    failed = attrs.evolve(d)
    failed.failed(b.T0, 503, "http_503", b.FixedRandom(0.5))
    async with store.transaction() as tx:
        await tx.deliveries.save(failed)
        assert await tx.deliveries.lease_due(b.T0, b.T0 + timedelta(seconds=9), 10) == []
        assert await tx.deliveries.get(d.id) == failed


async def test_saving_an_endpoint_or_delivery_that_is_not_stored_raises_not_found(
    store: Store,
) -> None:
    e = b.endpoint()
    with pytest.raises(NotFound):
        async with store.transaction() as tx:
            await tx.endpoints.save(e)
    async with store.transaction() as tx:
        await tx.endpoints.add(e)
    with pytest.raises(NotFound):
        async with store.transaction() as tx:
            await tx.deliveries.save(b.delivery(e))
    async with store.transaction() as tx:
        assert await tx.endpoints.list_for_sellers([e.seller_id]) == [e]
