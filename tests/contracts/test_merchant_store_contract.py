"""Contract of the MerchantRepository port details the HTTP suite cannot pin exactly."""

from __future__ import annotations

from datetime import timedelta

from autokey.domain.model.ids import OrderId, PoolId, SubjectId
from autokey.domain.model.merchant import Reservation, ReservationLine, ReservationState
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
        found = await tx.merchant.get_reservations(seller, wanted, for_update=True)
        assert found == {r.id: r for r in mine}  # another seller's and unknown ids are absent
        found[mine[0].id].order(7, b.T0 + timedelta(minutes=1))
        assert found[mine[1].id].release()
        await tx.merchant.save_reservations([found[mine[0].id], found[mine[1].id]])
    async with store.transaction() as tx:
        again = await tx.merchant.get_reservations(seller, [r.id for r in mine])
        assert await tx.merchant.get_reservations(other, [theirs.id]) == {theirs.id: theirs}
    assert [again[r.id].state for r in mine] == [
        ReservationState.ORDERED,
        ReservationState.RELEASED,
        ReservationState.OPEN,
    ]
    assert (again[mine[0].id].g2a_order_id, again[mine[0].id].ordered_at) == (
        7,
        b.T0 + timedelta(minutes=1),
    )
