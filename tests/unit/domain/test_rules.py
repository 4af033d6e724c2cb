"""Rules that each have one home on the model: who owns what, stock shortfalls, what
fulfilling means for an order, and G2A's one key per order."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import (
    InvalidInput,
    NotFound,
    OfferNotAvailable,
    OrderNotPaid,
    OutOfStock,
    StockBusy,
)
from autokey.domain.model.ids import OrderId
from autokey.domain.model.offers import DeliveryType, Money, OfferStatus
from autokey.domain.model.orders import Fulfillment, Order, OrderStatus
from tests import builders as b

LATER = b.T0 + timedelta(minutes=1)


def _order(
    status: OrderStatus = OrderStatus.PAID,
    quantity: int = 2,
    delivery: DeliveryType = DeliveryType.AUTO_KEY,
) -> Order:
    seller = b.seller()
    order = b.order(b.offer(seller, b.pool(seller).id), b.seller(), quantity=quantity)
    order.status, order.delivery_type = status, delivery
    return order


def test_only_the_owner_or_an_admin_may_manage_a_resource_and_others_learn_nothing() -> None:
    owner = b.seller()
    pool = b.pool(owner)
    assert Principal(subject=owner, role=Role.SELLER).must_own(pool, "key_pool", pool.id) is pool
    assert Principal(subject=b.seller(), role=Role.ADMIN).must_own(pool, "key_pool", pool.id)
    stranger = Principal(subject=b.seller(), role=Role.SELLER)
    with pytest.raises(NotFound) as foreign:
        stranger.must_own(pool, "key_pool", pool.id)
    with pytest.raises(NotFound) as absent:
        stranger.must_own(None, "key_pool", pool.id)
    for refused in (foreign.value, absent.value):
        assert (refused.resource, refused.id) == ("key_pool", str(pool.id))


def test_an_order_belongs_to_its_buyer_not_to_the_seller() -> None:
    seller, buyer = b.seller(), b.seller()
    order = b.order(b.offer(seller, b.pool(seller).id), buyer)
    assert Principal(subject=buyer, role=Role.BUYER).must_own(order, "order", order.id) is order
    with pytest.raises(NotFound):
        Principal(subject=seller, role=Role.SELLER).must_own(order, "order", order.id)


@pytest.mark.parametrize(
    ("claimed", "unclaimed", "error"),
    [
        (0, 0, OutOfStock),
        (1, 0, OutOfStock),
        (0, 1, OutOfStock),
        (1, 1, StockBusy),
        (0, 5, StockBusy),
    ],
)
def test_a_shortfall_is_busy_when_the_keys_exist_and_out_of_stock_when_they_do_not(
    claimed: int, unclaimed: int, error: type[Exception]
) -> None:
    order = _order(OrderStatus.PENDING, quantity=2)
    refused = order.shortfall(claimed=claimed, unclaimed=unclaimed)
    assert type(refused) is error
    assert refused.offer_id == str(order.offer_id)
    if isinstance(refused, OutOfStock):
        assert (refused.requested, refused.available) == (2, claimed + unclaimed)


def test_fulfilling_a_paid_order_delivers_once_and_again_returns_the_keys_delivered_then() -> None:
    order = _order()
    assert order.request_fulfillment(b.T0) is Fulfillment.DELIVER
    assert (order.status, order.fulfilled_at) == (OrderStatus.FULFILLED, b.T0)
    again = order.request_fulfillment(LATER)
    assert again is Fulfillment.DELIVERED_BEFORE
    assert (order.status, order.fulfilled_at, order.updated_at) == (
        OrderStatus.FULFILLED,
        b.T0,
        b.T0,
    )


def test_a_key_bought_upstream_is_sourced_outside_and_the_order_is_left_as_it_is() -> None:
    paid = _order(delivery=DeliveryType.G2A)
    fulfilling = _order(OrderStatus.FULFILLING, delivery=DeliveryType.G2A)
    assert paid.request_fulfillment(b.T0) is Fulfillment.SOURCE
    assert fulfilling.request_fulfillment(b.T0) is Fulfillment.SOURCE
    assert (paid.status, fulfilling.status) == (OrderStatus.PAID, OrderStatus.FULFILLING)


@pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.CANCELED])
def test_only_a_paid_order_can_be_fulfilled(status: OrderStatus) -> None:
    with pytest.raises(OrderNotPaid):
        _order(status, delivery=DeliveryType.G2A).request_fulfillment(b.T0)


def _g2a_offer():  # type: ignore[no-untyped-def]
    seller = b.seller()
    return attrs.evolve(
        b.offer(seller, b.pool(seller).id),
        delivery_type=DeliveryType.G2A,
        g2a_product_id="10000000000001",
        max_price=Money.parse("20", "EUR"),
    )


def _place(offer, quantity: int) -> Order:  # type: ignore[no-untyped-def]
    return Order.place(
        id=OrderId(b.new_uuid()),
        buyer_id=b.seller(),
        offer=offer,
        quantity=quantity,
        now=b.T0,
        reserved_until=LATER,
    )


def test_a_g2a_order_is_for_one_key_because_each_is_bought_upstream_alone() -> None:
    offer = _g2a_offer()
    order = _place(offer, 1)
    assert (order.status, order.pool_id, order.unit_price) == (
        OrderStatus.PENDING,
        offer.key_pool_id,
        offer.price,
    )
    with pytest.raises(InvalidInput) as refused:
        _place(offer, 2)
    assert [(p.field, p.code) for p in refused.value.problems] == [
        ("quantity", "one_per_order_for_g2a_offers")
    ]
    seller = b.seller()
    assert _place(b.offer(seller, b.pool(seller).id), 2).quantity == 2


def test_an_order_is_placed_only_on_a_purchasable_offer() -> None:
    seller = b.seller()
    with pytest.raises(OfferNotAvailable):
        _place(b.offer(seller, b.pool(seller).id, OfferStatus.INACTIVE), 1)
    with pytest.raises(OfferNotAvailable):  # checked before the G2A quantity rule
        _place(attrs.evolve(_g2a_offer(), status=OfferStatus.DRAFT), 2)
