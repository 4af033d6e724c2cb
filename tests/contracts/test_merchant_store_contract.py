"""Contract of the MerchantRepository port details the HTTP suite cannot pin exactly."""

from __future__ import annotations

from datetime import timedelta

import attrs

from autokey.domain.model.ids import OrderId, PoolId, SubjectId
from autokey.domain.model.merchant import Reservation, ReservationLine, ReservationState
from autokey.domain.model.offers import OfferStatus
from autokey.ports.store import Store
from tests import builders as b


def _reservation(seller: SubjectId, pool: PoolId) -> Reservation:
    order_id = OrderId(b.new_uuid())
    line = ReservationLine(product_id="10000068865001", quantity=1, order_id=order_id, pool_id=pool)
    return Reservation(
        id=str(order_id),
        seller_id=seller,
        state=ReservationState.OPEN,
        lines=(line,),
        created_at=b.T0,
        expires_at=b.T0 + timedelta(minutes=30),
    )


async def test_reservations_are_added_read_and_saved_many_at_a_time(store: Store) -> None:
    seller, other = b.seller(), b.seller()
    pool = b.pool(seller)
    mine = [_reservation(seller, pool.id) for _ in range(3)]
    theirs = _reservation(other, pool.id)
    async with store.transaction() as tx:
        await tx.merchant.add_reservations([*mine, theirs])
    wanted = [r.id for r in mine] + [theirs.id, "no-such-reservation"]
    async with store.transaction() as tx:
        pairs = [(seller, i) for i in wanted]
        found = {
            i: r
            for (_, i), r in (await tx.merchant.get_reservations(pairs, for_update=True)).items()
        }
        assert found == {r.id: r for r in mine}  # another seller's and unknown ids are absent
        found[mine[0].id].order(7, b.T0 + timedelta(minutes=1))
        assert found[mine[1].id].release()
        await tx.merchant.save_reservations([found[mine[0].id], found[mine[1].id]])
    async with store.transaction() as tx:
        both = await tx.merchant.get_reservations(
            [*((seller, r.id) for r in mine), (other, theirs.id)]
        )
        again = {i: r for (s, i), r in both.items() if s == seller}
        assert {k: r for k, r in both.items() if k[0] == other} == {(other, theirs.id): theirs}
    assert [again[r.id].state for r in mine] == [
        ReservationState.ORDERED,
        ReservationState.RELEASED,
        ReservationState.OPEN,
    ]
    assert (again[mine[0].id].g2a_order_id, again[mine[0].id].ordered_at) == (
        7,
        b.T0 + timedelta(minutes=1),
    )


async def test_linked_offers_are_found_for_many_sellers_and_products_at_once(store: Store) -> None:
    product, other_product = "10000068865001", "10000149026001"
    first, second = b.seller(), b.seller()
    pools = {s: b.pool(s) for s in (first, second)}
    linked = {s: attrs.evolve(b.offer(s, pools[s].id), g2a_product_id=product) for s in pools}
    inactive = attrs.evolve(
        b.offer(first, pools[first].id, OfferStatus.INACTIVE), g2a_product_id=other_product
    )
    async with store.transaction() as tx:
        for pool in pools.values():
            await tx.pools.add(pool)
        for offer in [*linked.values(), inactive]:
            await tx.offers.add(offer)
    wanted = [(first, product), (second, product), (first, other_product), (b.seller(), product)]
    async with store.transaction() as tx:
        found = await tx.merchant.find_linked_offers(wanted)
    assert found == {(first, product): linked[first], (second, product): linked[second]}
