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
from autokey.domain.model.keys import KeyStatus
from autokey.domain.model.offers import DeliveryType, Money
from autokey.domain.model.orders import OrderStatus
from autokey.domain.services.orders import OrderCall, OrderService, OrderView
from autokey.domain.services.transactions import transact
from autokey.ports.store import Store
from tests import builders as b
from tests.conftest import MASTER_KEY, FakeClock


@pytest.mark.parametrize("batched", [False, True])
async def test_a_paid_order_is_fulfilled_from_the_pool_after_its_offer_moved_to_g2a(
    store: Store, batched: bool
) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
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
    # The seller now sells the offer as bought on G2A.
    moved = attrs.evolve(
        offer,
        delivery_type=DeliveryType.G2A,
        g2a_product_id="10000068865001",
        max_price=Money.parse("30", "EUR"),
    )
    async with store.transaction() as tx:
        await tx.offers.save(moved)
    if batched:
        async with store.transaction() as tx:
            views = await orders.fulfill_many_in(tx, [_call(buyer, placed), _call(buyer, placed)])
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


def _call(buyer: Principal, placed: OrderView) -> OrderCall:
    return OrderCall(principal=buyer, order_id=placed.order.id)


async def test_a_paid_g2a_order_is_still_bought_upstream_after_its_offer_moved_to_the_pool(
    store: Store,
) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = attrs.evolve(
        b.offer(owner, pool.id),
        delivery_type=DeliveryType.G2A,
        g2a_product_id="10000068865001",
        max_price=Money.parse("30", "EUR"),
    )
    key = b.key(pool.id)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new([key])  # a key in the pool, which the order must not take
        await tx.offers.add(offer)
    orders = OrderService(
        store, AesGcmKeyCipher([MASTER_KEY]), SimulatedPaymentGateway(), FakeClock(b.T0),
        Uuid7Ids(), reservation_ttl_s=900,
    )  # fmt: skip
    buyer = Principal(subject=SubjectId(uuid.uuid4()), role=Role.BUYER)
    placed = await transact(store, lambda tx: orders.create_in(tx, buyer, offer.id, 1))
    await transact(store, lambda tx: orders.pay_in(tx, buyer, placed.order.id))
    async with store.transaction() as tx:
        await tx.offers.save(attrs.evolve(offer, delivery_type=DeliveryType.AUTO_KEY))
    view = await transact(store, lambda tx: orders.fulfill_in(tx, buyer, placed.order.id))
    # Before ADR 0033 this was FULFILLED with no key at all.
    assert view.sourcing_required
    assert view.order.status is OrderStatus.PAID
    assert view.keys == ()
    async with store.transaction() as tx:
        untouched = await tx.keys.get(key.id)
    assert untouched is not None
    assert untouched.status is KeyStatus.AVAILABLE
