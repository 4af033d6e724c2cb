"""Contract of the MerchantRepository port details the HTTP suite cannot pin exactly."""

from __future__ import annotations

from autokey.ports.store import Store
from tests import builders as b


async def test_available_up_to_counts_available_keys_no_further_than_the_cap(
    store: Store,
) -> None:
    pool = b.pool(b.seller())
    keys = [b.key(pool.id) for _ in range(5)]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new(keys)
        keys[0].invalidate()
        await tx.keys.save(keys[0])
    async with store.transaction() as tx:
        assert await tx.merchant.available_up_to(pool.id, 10) == 4
        assert await tx.merchant.available_up_to(pool.id, 3) == 3
        assert await tx.merchant.available_up_to(b.pool().id, 3) == 0
