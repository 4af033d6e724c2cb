"""An order keeps the terms it was placed on: a seller who changes an active offer's delivery
type never strands a paid order's reserved keys nor fulfills one without keys."""

from __future__ import annotations

import uuid

import attrs
import pytest

from autokey.adapters.crypto import AesGcmKeyCipher
from autokey.adapters.payments import SimulatedPaymentGateway
from autokey.adapters.system import Uuid7Ids
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.ids import SubjectId
from autokey.domain.model.keys import Key, KeyStatus
from autokey.domain.model.offers import DeliveryType, Money, Offer
from autokey.domain.model.orders import OrderStatus
from autokey.domain.services.orders import OrderCall, OrderService, OrderView
from autokey.domain.services.transactions import transact
from autokey.ports.store import Store
from tests import builders as b
from tests.conftest import MASTER_KEY, FakeClock


def _g2a(offer: Offer) -> Offer:
    """The offer sold as bought on G2A."""
    return attrs.evolve(
        offer,
        delivery_type=DeliveryType.G2A,
        g2a_product_id="10000068865001",
        max_price=Money.parse("30", "EUR"),
    )


@attrs.frozen
class _Paid:
    orders: OrderService
    buyer: Principal
    placed: OrderView
    offer: Offer
    key: Key
    """A key in the offer's pool (reserved by the order when the offer sold from the pool)."""


async def _paid(store: Store, *, from_g2a: bool) -> _Paid:
    """A pool with one key, an offer on it (from the pool, or bought on G2A) and a paid order."""
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    offer = _g2a(offer) if from_g2a else offer
    key = b.key(pool.id)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new([key])
        await tx.offers.add(offer)
    orders = OrderService(
        store, AesGcmKeyCipher([MASTER_KEY]), SimulatedPaymentGateway(), FakeClock(b.T0),
        Uuid7Ids(), reservation_ttl_s=900,
    )  # fmt: skip
    buyer = Principal(subject=SubjectId(uuid.uuid4()), role=Role.BUYER)
    placed = await transact(store, lambda tx: orders.create_in(tx, buyer, offer.id, 1))
    await transact(store, lambda tx: orders.pay_in(tx, buyer, placed.order.id))
    return _Paid(orders=orders, buyer=buyer, placed=placed, offer=offer, key=key)


@pytest.mark.parametrize("batched", [False, True])
async def test_a_paid_order_is_fulfilled_from_the_pool_after_its_offer_moved_to_g2a(
    store: Store, batched: bool
) -> None:
    paid = await _paid(store, from_g2a=False)
    orders, buyer, placed, key = paid.orders, paid.buyer, paid.placed, paid.key
    async with store.transaction() as tx:
        await tx.offers.save(_g2a(paid.offer))  # the seller now sells it as bought on G2A
    if batched:
        call = OrderCall(principal=buyer, order_id=placed.order.id)
        async with store.transaction() as tx:
            views = await orders.fulfill_many_in(tx, [call, call])
        view = views[0]
        assert view is not None
    else:
        view = await transact(store, lambda tx: orders.fulfill_in(tx, buyer, placed.order.id))
    assert not view.sourcing_required
    assert view.order.status is OrderStatus.FULFILLED
    assert [k.id for k in view.keys] == [key.id]
    async with store.transaction() as tx:
        stored = await tx.keys.get(key.id)
    assert stored is not None
    assert (stored.status, stored.order_id) == (KeyStatus.DELIVERED, placed.order.id)


async def test_a_paid_g2a_order_is_still_bought_upstream_after_its_offer_moved_to_the_pool(
    store: Store,
) -> None:
    paid = await _paid(store, from_g2a=True)
    orders, buyer, placed = paid.orders, paid.buyer, paid.placed
    async with store.transaction() as tx:
        await tx.offers.save(attrs.evolve(paid.offer, delivery_type=DeliveryType.AUTO_KEY))
    view = await transact(store, lambda tx: orders.fulfill_in(tx, buyer, placed.order.id))
    # Before ADR 0033 this was FULFILLED with no key at all.
    assert view.sourcing_required
    assert view.order.status is OrderStatus.PAID
    assert view.keys == ()
    async with store.transaction() as tx:
        untouched = await tx.keys.get(paid.key.id)  # in the pool: the order must not take it
    assert untouched is not None
    assert untouched.status is KeyStatus.AVAILABLE
