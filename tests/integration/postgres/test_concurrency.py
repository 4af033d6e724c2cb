"""Real concurrency against real PostgreSQL: claims and sweeps skip each other's locks."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.ids import KeyId, OrderId
from autokey.domain.model.keys import PoolCounts
from autokey.domain.model.orders import Order
from tests import builders as b

pytestmark = pytest.mark.postgres

BUYERS = 20
STOCK = 10


async def test_twenty_concurrent_claims_on_ten_keys_give_ten_distinct_keys_without_blocking(
    pg_store: PostgresStore,
) -> None:
    pool = b.pool()
    keys = [b.key(pool.id) for _ in range(STOCK)]
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new(keys)
    # Nobody commits until every buyer has claimed: a claim that waited on another
    # buyer's locked row would never reach the barrier and the test would time out.
    everyone_claimed = asyncio.Barrier(BUYERS)

    async def buy() -> tuple[OrderId, list[KeyId], int]:
        order_id = OrderId(b.new_uuid())
        async with pg_store.transaction() as tx:
            got = list(await tx.keys.claim(pool.id, order_id, 1, b.T0))
            available = await tx.keys.count_available(pool.id)
            await everyone_claimed.wait()
            await asyncio.sleep(0.05)
        return order_id, got, available

    async with asyncio.timeout(15):
        results = await asyncio.gather(*(buy() for _ in range(BUYERS)))

    winners = [(order_id, got) for order_id, got, _ in results if got]
    claimed = [key_id for _, got in winners for key_id in got]
    assert len(winners) == STOCK
    assert sorted(claimed) == sorted(k.id for k in keys)  # ten keys, each exactly once
    for _, got, available in results:
        # Before anyone committed, each buyer saw the stock minus only its own claim:
        # locked rows still count as available to others.
        assert available + len(got) == STOCK
    async with pg_store.transaction() as tx:
        assert await tx.keys.count_available(pool.id) == 0
        assert await tx.pools.counts(pool.id) == PoolCounts(reserved=STOCK)
        for order_id, got in winners:
            assert [k.id for k in await tx.keys.for_order(order_id)] == got


async def test_two_concurrent_sweepers_lock_disjoint_expired_orders(
    pg_store: PostgresStore,
) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    expired = [b.order(offer, b.seller(), ttl_s=60 + i) for i in range(6)]
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        for order in [*expired, b.order(offer, b.seller(), ttl_s=3600)]:
            await tx.orders.add(order)
    both_locked = asyncio.Barrier(2)
    later = b.T0 + timedelta(minutes=10)

    async def sweep() -> list[Order]:
        async with pg_store.transaction() as tx:
            mine = list(await tx.orders.lock_expired(later, limit=3))
            await both_locked.wait()
            await asyncio.sleep(0.05)
        return mine

    async with asyncio.timeout(15):
        first, second = await asyncio.gather(sweep(), sweep())

    first_ids, second_ids = {o.id for o in first}, {o.id for o in second}
    assert len(first_ids) == len(second_ids) == 3
    assert first_ids.isdisjoint(second_ids)
    assert first_ids | second_ids == {o.id for o in expired}
