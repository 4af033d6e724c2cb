"""Contract of the store methods group commit uses (ADR 0032): several orders per call, with
the outcome each single-order method would give, on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from autokey.domain.model.errors import NotFound
from autokey.domain.model.ids import OrderId
from autokey.domain.model.keys import Key, KeyPool, KeyStatus
from autokey.domain.model.orders import OrderStatus
from autokey.ports.store import Store
from tests import builders as b


async def _stocked(store: Store, count: int) -> tuple[KeyPool, list[Key]]:
    """A pool whose keys were created one second apart, oldest first."""
    pool = b.pool()
    keys = [
        attrs.evolve(b.key(pool.id), created_at=b.T0 + timedelta(seconds=i)) for i in range(count)
    ]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new(keys)
    return pool, keys


async def test_claim_many_serves_orders_in_turn_oldest_keys_first(store: Store) -> None:
    pool, keys = await _stocked(store, 6)
    first, second, third = (OrderId(b.new_uuid()) for _ in range(3))
    async with store.transaction() as tx:
        served = await tx.keys.claim_many(
            [(first, pool.id, 2), (second, pool.id, 1), (third, pool.id, 3)], b.T0
        )
    assert served == {
        first: sorted([keys[0].id, keys[1].id]),
        second: [keys[2].id],
        third: sorted(k.id for k in keys[3:]),
    }
    async with store.transaction() as tx:
        assert [k.id for k in await tx.keys.for_order(third)] == sorted(k.id for k in keys[3:])
        assert await tx.keys.count_available(pool.id) == 0


async def test_claim_many_stops_at_the_first_order_it_cannot_serve_in_full(store: Store) -> None:
    pool, keys = await _stocked(store, 4)
    first, short, after = (OrderId(b.new_uuid()) for _ in range(3))
    async with store.transaction() as tx:
        served = await tx.keys.claim_many(
            [(first, pool.id, 2), (short, pool.id, 3), (after, pool.id, 1)], b.T0
        )
    assert served == {first: sorted([keys[0].id, keys[1].id])}
    async with store.transaction() as tx:
        assert await tx.keys.for_order(short) == []
        assert await tx.keys.for_order(after) == []
        assert await tx.keys.count_available(pool.id) == 2
        counts = await tx.pools.counts(pool.id)
    assert (counts.available, counts.reserved) == (2, 2)
    # The keys left are the two youngest, still claimable.
    async with store.transaction() as tx:
        rest = await tx.keys.claim_many([(after, pool.id, 2)], b.T0)
    assert rest == {after: sorted([keys[2].id, keys[3].id])}


async def test_claim_many_serves_each_pool_on_its_own_in_one_call(store: Store) -> None:
    full, full_keys = await _stocked(store, 3)
    short, short_keys = await _stocked(store, 2)
    a, b_short, c, d = (OrderId(b.new_uuid()) for _ in range(4))
    wants = [(a, full.id, 2), (b_short, short.id, 3), (c, full.id, 1), (d, short.id, 1)]
    async with store.transaction() as tx:
        served = await tx.keys.claim_many(wants, b.T0)
    # The short pool stops at its first order; the other pool goes on serving.
    assert served == {a: sorted(k.id for k in full_keys[:2]), c: [full_keys[2].id]}
    async with store.transaction() as tx:
        assert await tx.keys.count_available(short.id) == len(short_keys)
        assert await tx.keys.count_available(full.id) == 0


async def test_claim_many_on_an_empty_or_unknown_pool_serves_no_one(store: Store) -> None:
    pool, _ = await _stocked(store, 0)
    async with store.transaction() as tx:
        assert await tx.keys.claim_many([(OrderId(b.new_uuid()), pool.id, 1)], b.T0) == {}
        assert await tx.keys.claim_many([(OrderId(b.new_uuid()), b.pool().id, 1)], b.T0) == {}


async def test_deliver_orders_delivers_each_orders_reserved_keys_once(store: Store) -> None:
    pool, keys = await _stocked(store, 5)
    first, second, empty = (OrderId(b.new_uuid()) for _ in range(3))
    delivered_at = b.T0 + timedelta(minutes=1)
    async with store.transaction() as tx:
        await tx.keys.claim_many([(first, pool.id, 2), (second, pool.id, 3)], b.T0)
        found = await tx.keys.deliver_orders([first, second, empty], delivered_at)
    assert set(found) == {first, second}
    assert [k.id for k in found[first]] == sorted([keys[0].id, keys[1].id])
    assert [k.id for k in found[second]] == sorted(k.id for k in keys[2:])
    for order_id, delivered in found.items():
        assert all(k.status is KeyStatus.DELIVERED for k in delivered)
        assert all((k.order_id, k.delivered_at) == (order_id, delivered_at) for k in delivered)
        assert [k.sealed for k in delivered] == [
            next(s.sealed for s in keys if s.id == k.id) for k in delivered
        ]
    async with store.transaction() as tx:
        assert await tx.keys.deliver_orders([first, second], delivered_at) == {}
        counts = await tx.pools.counts(pool.id)
    assert (counts.delivered, counts.reserved) == (5, 0)


async def test_orders_are_added_read_and_saved_many_at_a_time(store: Store) -> None:
    owner, buyer = b.seller(), b.seller()
    pool = b.pool(owner)
    offers = [b.offer(owner, pool.id), b.offer(owner, pool.id)]
    orders = [b.order(offers[i % 2], buyer, quantity=i + 1) for i in range(3)]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        for offer in offers:
            await tx.offers.add(offer)
        await tx.orders.add_many(orders)
    unknown = OrderId(b.new_uuid())
    async with store.transaction() as tx:
        found = await tx.offers.get_many([offers[0].id, offers[1].id, b.offer(owner, None).id])
        assert found == {o.id: o for o in offers}
        locked = await tx.orders.get_many([o.id for o in orders] + [unknown], for_update=True)
        assert locked == {o.id: o for o in orders}
        orders[0].pay(b.T0 + timedelta(seconds=1))
        orders[2].cancel(b.T0 + timedelta(seconds=2), "changed_my_mind")
        await tx.orders.save_many([orders[0], orders[2]])
    async with store.transaction() as tx:
        again = await tx.orders.get_many([o.id for o in orders])
    assert again == {o.id: o for o in orders}
    assert [again[o.id].status for o in orders] == [
        OrderStatus.PAID,
        OrderStatus.PENDING,
        OrderStatus.CANCELED,
    ]


@pytest.mark.parametrize("saved", ["both", "missing only"])
async def test_saving_orders_one_of_which_is_not_stored_raises_not_found(
    store: Store, saved: str
) -> None:
    """Also for a lone order, which PostgreSQL saves with a statement of its own."""
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    stored, missing = b.order(offer, b.seller()), b.order(offer, b.seller())
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.orders.add(stored)
    stored.pay(b.T0)
    with pytest.raises(NotFound) as raised:
        async with store.transaction() as tx:
            await tx.orders.save_many([stored, missing] if saved == "both" else [missing])
            # A store that sends the write without waiting raises here, at the next answer.
            await tx.orders.get_many([stored.id])
    assert (raised.value.resource, raised.value.id) == ("order", str(missing.id))
    async with store.transaction() as tx:
        assert (await tx.orders.get_many([stored.id]))[stored.id].status is OrderStatus.PENDING
