"""Rules on which the stores once drifted apart (issue 10, section 2), pinned at their
boundaries so memory, SQLite and PostgreSQL cannot drift again."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from autokey.domain.model.errors import DuplicateResource, NotFound
from autokey.domain.model.ids import OrderId
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import UPSTREAM_ORDER, Order, UpstreamState
from autokey.ports.store import Store
from tests import builders as b

MICROSECOND = timedelta(microseconds=1)


async def test_a_reservation_expires_exactly_when_the_model_says_so(store: Store) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    order = b.order(offer, b.seller(), ttl_s=60)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.orders.add(order)
    boundary = order.reserved_until
    for now in (boundary - MICROSECOND, boundary, boundary + MICROSECOND):
        async with store.transaction() as tx:
            swept = await tx.orders.lock_expired(now, limit=10)
        assert [o.id for o in swept] == ([order.id] if order.is_expired(now) else []), now
    assert not order.is_expired(boundary - MICROSECOND)
    assert order.is_expired(boundary)


async def test_claims_take_the_oldest_keys_by_created_at_then_id(store: Store) -> None:
    pool = b.pool()
    # Ids ascend a < b < c < d, but creation runs the other way, with b and c created at
    # the same instant (so id breaks that tie): the oldest first is d, b, c, a.
    a, b_, c, d = (b.key(pool.id) for _ in range(4))
    stamped = [
        attrs.evolve(a, created_at=b.T0 + timedelta(seconds=2)),
        attrs.evolve(b_, created_at=b.T0 + timedelta(seconds=1)),
        attrs.evolve(c, created_at=b.T0 + timedelta(seconds=1)),
        attrs.evolve(d, created_at=b.T0),
    ]
    assert sorted(k.id for k in stamped) == [a.id, b_.id, c.id, d.id]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new(stamped)
    taken = []
    for _ in range(4):
        async with store.transaction() as tx:
            taken += await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 1, b.T0)
    assert taken == [d.id, b_.id, c.id, a.id]


def _sourcing(offer: Offer, upstream_id: str | None) -> Order:
    order = b.order(offer, b.seller())
    order.pay(b.T0)
    order.start_sourcing(b.T0)
    if upstream_id is not None:
        order.record_upstream(UpstreamState.CREATED, b.T0, upstream_id)
    return order


async def test_an_upstream_order_id_belongs_to_one_order(store: Store) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    first, second, clash = (
        _sourcing(offer, "G2A-1"),
        _sourcing(offer, None),
        _sourcing(offer, "G2A-1"),
    )
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.orders.add(first)
        await tx.orders.add(second)
    async with store.transaction() as tx:
        with pytest.raises(DuplicateResource) as added:
            await tx.orders.add(clash)
        second.record_upstream(UpstreamState.CREATED, b.T0, "G2A-1")
        with pytest.raises(DuplicateResource) as saved:
            await tx.orders.save(second)
        # Both refusals leave the transaction usable, and saving an order with its own
        # upstream id is no clash.
        first.record_upstream(UpstreamState.PAID, b.T0 + timedelta(seconds=1))
        await tx.orders.save(first)
    for refused in (added.value, saved.value):
        assert (refused.resource, refused.id) == (UPSTREAM_ORDER, "G2A-1")
    async with store.transaction() as tx:
        assert await tx.orders.get(clash.id) is None
        stored = await tx.orders.get(second.id)
        assert stored is not None
        assert stored.upstream_order_id is None
        found = await tx.orders.find_by_upstream_id("G2A-1")
        assert found == first


async def test_saving_a_key_that_is_not_stored_raises_not_found(store: Store) -> None:
    pool = b.pool()
    ghost = b.key(pool.id)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        ghost.invalidate()
        with pytest.raises(NotFound) as caught:
            await tx.keys.save(ghost)
        assert (caught.value.resource, caught.value.id) == ("key", str(ghost.id))
        assert await tx.keys.get(ghost.id) is None


async def test_saving_an_offer_or_order_that_is_not_stored_raises_not_found(
    store: Store,
) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    order = b.order(offer, b.seller())
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        with pytest.raises(NotFound) as offer_missing:
            await tx.offers.save(offer)
        await tx.offers.add(offer)
        with pytest.raises(NotFound) as order_missing:
            await tx.orders.save(order)
        assert await tx.orders.get(order.id) is None
    assert (offer_missing.value.resource, offer_missing.value.id) == ("offer", str(offer.id))
    assert (order_missing.value.resource, order_missing.value.id) == ("order", str(order.id))


async def test_two_steps_together_give_each_its_own_result(store: Store) -> None:
    """`UnitOfWork.together`: what each step returns alone, in the order given."""
    pool, offer = await b.stored_offer(store)
    owner = pool.seller_id
    async with store.transaction() as tx:
        offers, found = await tx.together(tx.offers.get_many({offer.id}), tx.pools.get(pool.id))
        none, same = await tx.together(
            tx.offers.get(b.offer(owner, pool.id).id), tx.pools.get(pool.id)
        )
    assert (offers, found) == ({offer.id: offer}, pool)
    assert (none, same) == (None, pool)


@pytest.mark.parametrize("failing", [0, 1])
async def test_an_error_of_a_step_together_is_raised_and_rolls_the_transaction_back(
    store: Store, failing: int
) -> None:
    owner = b.seller()
    pool, ghost = b.pool(owner), b.offer(owner, b.pool(owner).id)
    with pytest.raises(NotFound) as caught:
        async with store.transaction() as tx:
            await tx.pools.add(pool)
            steps = [tx.offers.save(ghost), tx.pools.get(pool.id)]
            await tx.together(steps[failing], steps[1 - failing])
    assert (caught.value.resource, caught.value.id) == ("offer", str(ghost.id))
    async with store.transaction() as tx:
        assert await tx.pools.get(pool.id) is None
