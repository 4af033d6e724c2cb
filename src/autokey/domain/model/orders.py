"""Orders and their state machine."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

import attrs

from autokey.domain.model.errors import (
    IllegalTransition,
    InvalidInput,
    OrderKeysUnreadable,
    OrderNotPaid,
    OutOfStock,
    ReservationExpired,
    StockBusy,
)
from autokey.domain.model.ids import OfferId, OrderId, PoolId, SubjectId
from autokey.domain.model.merchant import Channel, channel_of
from autokey.domain.model.offers import DeliveryType, Money, Offer

MAX_QUANTITY = 100
UPSTREAM_ORDER = "upstream_order"
"""The resource a `DuplicateResource` names when a marketplace order id is already taken by
another order (each upstream order sources exactly one local order)."""
KEYS_UNREADABLE = "key_material_unreadable"
"""Cancel reason of a paid order whose keys could not be decrypted and had no replacement."""


class OrderStatus(enum.StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    FULFILLING = "FULFILLING"
    """Paid; its key is being bought upstream (G2A offers only)."""
    FULFILLED = "FULFILLED"
    CANCELED = "CANCELED"


@attrs.frozen(kw_only=True)
class SalesFilter:
    """Which of a seller's orders to list; every field left None matches all."""

    status: OrderStatus | None = None
    offer_id: OfferId | None = None
    since: datetime | None = None
    """Created at or after."""
    until: datetime | None = None
    """Created before."""
    channel: Channel | None = None

    def matches(self, order: Order) -> bool:
        return (
            (self.channel is None or channel_of(order.buyer_id) is self.channel)
            and (self.status is None or order.status is self.status)
            and (self.offer_id is None or order.offer_id == self.offer_id)
            and (self.since is None or order.created_at >= self.since)
            and (self.until is None or order.created_at < self.until)
        )


class OrderTransition(enum.Enum):
    """The named moves of the order state machine, as (sources, target).

    The model's methods perform them by name, and each SQL statement that changes an
    order's status is built from the one it performs."""

    PAY = (frozenset({OrderStatus.PENDING}), OrderStatus.PAID)
    START_SOURCING = (frozenset({OrderStatus.PAID}), OrderStatus.FULFILLING)
    FULFILL = (frozenset({OrderStatus.PAID, OrderStatus.FULFILLING}), OrderStatus.FULFILLED)
    CANCEL = (frozenset({OrderStatus.PENDING}), OrderStatus.CANCELED)
    """A reservation given up: by the buyer, or by expiry."""
    ABANDON = (frozenset({OrderStatus.PAID, OrderStatus.FULFILLING}), OrderStatus.CANCELED)
    """A paid order whose key will never come; the buyer is owed a refund."""

    @property
    def sources(self) -> frozenset[OrderStatus]:
        return self.value[0]

    @property
    def target(self) -> OrderStatus:
        return self.value[1]


ORDER_TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    status: frozenset(t.target for t in OrderTransition if status in t.sources)
    for status in OrderStatus
}
"""Every legal order transition. FULFILLED and CANCELED are terminal."""


class UpstreamState(enum.StrEnum):
    """Progress of the marketplace order that sources a G2A offer's key. Only moves forward."""

    REQUESTED = "requested"
    """We are about to create the upstream order (recorded BEFORE the request is sent)."""
    CREATED = "created"
    PAID = "paid"
    COMPLETE = "complete"
    """The key is ready to download."""
    FAILED = "failed"
    REFUNDED = "refunded"


UPSTREAM_RANK: Mapping[UpstreamState, int] = {s: i for i, s in enumerate(UpstreamState)}


class Fulfillment(enum.Enum):
    """What a buyer's request to fulfill an order comes to (`Order.request_fulfillment`)."""

    DELIVER = enum.auto()
    """The order is now FULFILLED: deliver its reserved keys."""
    DELIVERED_BEFORE = enum.auto()
    """Fulfilled before: the keys delivered then are returned again; nothing changes."""
    SOURCE = enum.auto()
    """The key is bought upstream, outside this transaction; nothing changes here."""


def check_quantity(quantity: int) -> int:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput.of("quantity", "out_of_range")
    return quantity


@attrs.define(kw_only=True)
class Order:
    """A buyer's purchase of `quantity` keys of one offer, reserved from its pool at creation."""

    id: OrderId
    buyer_id: SubjectId
    seller_id: SubjectId
    offer_id: OfferId
    pool_id: PoolId
    delivery_type: DeliveryType
    """The offer's, when the order was placed: a seller who changes the offer later changes
    how new orders are fulfilled, never this one."""
    quantity: int
    unit_price: Money
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    reserved_until: datetime
    paid_at: datetime | None = None
    fulfilled_at: datetime | None = None
    canceled_at: datetime | None = None
    cancel_reason: str | None = None
    upstream_order_id: str | None = None
    upstream_state: UpstreamState | None = None

    @classmethod
    def place(
        cls,
        *,
        id: OrderId,
        buyer_id: SubjectId,
        offer: Offer,
        quantity: int,
        now: datetime,
        reserved_until: datetime,
    ) -> Order:
        """A PENDING order for `quantity` keys of `offer`. OfferNotAvailable unless the offer
        is purchasable; a G2A offer's key is bought upstream one order at a time, so its
        orders are for one key (InvalidInput otherwise)."""
        pool_id = offer.ensure_purchasable()
        if offer.sources_upstream and quantity != 1:
            raise InvalidInput.of("quantity", "one_per_order_for_g2a_offers")
        return cls(
            id=id,
            buyer_id=buyer_id,
            seller_id=offer.seller_id,
            offer_id=offer.id,
            pool_id=pool_id,
            delivery_type=offer.delivery_type,
            quantity=quantity,
            unit_price=offer.price,
            status=OrderStatus.PENDING,
            created_at=now,
            updated_at=now,
            reserved_until=reserved_until,
        )

    @property
    def owner_id(self) -> SubjectId:
        """The buyer: only they (and admins) manage the order."""
        return self.buyer_id

    @property
    def total(self) -> Money:
        return self.unit_price.times(self.quantity)

    def _move(self, transition: OrderTransition, now: datetime) -> None:
        if self.status not in transition.sources:
            raise IllegalTransition(
                resource="order", id=str(self.id), current=self.status, target=transition.target
            )
        self.status, self.updated_at = transition.target, now

    def pay(self, now: datetime) -> None:
        """PENDING -> PAID. A reservation that has expired cannot be paid."""
        if self.is_expired(now):
            raise ReservationExpired(resource="order", id=str(self.id))
        self._move(OrderTransition.PAY, now)
        self.paid_at = now

    def fulfill(self, now: datetime) -> None:
        """PAID or FULFILLING -> FULFILLED; OrderNotPaid from PENDING or CANCELED, and
        OrderKeysUnreadable once the order was canceled because its keys are unreadable."""
        if self.cancel_reason == KEYS_UNREADABLE:
            raise OrderKeysUnreadable(resource="order", id=str(self.id))
        if self.status not in (OrderStatus.PAID, OrderStatus.FULFILLING):
            raise OrderNotPaid(resource="order", id=str(self.id), status=self.status)
        self._move(OrderTransition.FULFILL, now)
        self.fulfilled_at = now

    def shortfall(self, *, claimed: int, unclaimed: int) -> StockBusy | OutOfStock:
        """The error for a reservation that claimed only `claimed` of its keys while
        `unclaimed` other keys of the pool are AVAILABLE: StockBusy when together they would
        be enough (other transactions hold them; a retry may succeed), else OutOfStock."""
        available = claimed + unclaimed
        if available >= self.quantity:
            return StockBusy(offer_id=str(self.offer_id))
        return OutOfStock(offer_id=str(self.offer_id), requested=self.quantity, available=available)

    @property
    def sources_upstream(self) -> bool:
        """Its key is bought on G2A when it is fulfilled (it reserved none at creation)."""
        return self.delivery_type is DeliveryType.G2A

    def request_fulfillment(self, now: datetime) -> Fulfillment:
        """The buyer asks for the keys. Fulfilling again returns the keys delivered before;
        a key bought upstream (FULFILLING, or PAID and `sources_upstream`) is sourced outside
        this transaction; otherwise `fulfill`, with its errors."""
        if self.status is OrderStatus.FULFILLED:
            return Fulfillment.DELIVERED_BEFORE
        if self.status is OrderStatus.FULFILLING or (
            self.status is OrderStatus.PAID and self.sources_upstream
        ):
            return Fulfillment.SOURCE
        self.fulfill(now)
        return Fulfillment.DELIVER

    def start_sourcing(self, now: datetime) -> None:
        """PAID -> FULFILLING, recording the intent to create the upstream order."""
        if self.status is not OrderStatus.PAID:
            raise OrderNotPaid(resource="order", id=str(self.id), status=self.status)
        self._move(OrderTransition.START_SOURCING, now)
        self.upstream_state = UpstreamState.REQUESTED

    def record_upstream(
        self, state: UpstreamState, now: datetime, upstream_order_id: str | None = None
    ) -> bool:
        """Move the upstream state forward; a late or repeated report changes nothing and
        returns False (events may arrive twice, late or out of order)."""
        if upstream_order_id is not None:
            self.upstream_order_id = self.upstream_order_id or upstream_order_id
        current = self.upstream_state
        if current is not None and UPSTREAM_RANK[state] <= UPSTREAM_RANK[current]:
            return False
        self.upstream_state, self.updated_at = state, now
        if state in (UpstreamState.FAILED, UpstreamState.REFUNDED) and (
            self.status is OrderStatus.FULFILLING
        ):
            self.abandon(now, f"upstream_{state.value}")
        return True

    def cancel(self, now: datetime, reason: str) -> None:
        """PENDING -> CANCELED; the caller releases the reserved keys in the same transaction."""
        if self.status is not OrderStatus.PENDING:
            raise IllegalTransition(
                resource="order", id=str(self.id), current=self.status, target=OrderStatus.CANCELED
            )
        self._move(OrderTransition.CANCEL, now)
        self.canceled_at, self.cancel_reason = now, reason

    def abandon(self, now: datetime, reason: str) -> None:
        """PAID or FULFILLING -> CANCELED: the key will never come (the upstream purchase
        failed or was refunded, or the stored keys are unreadable and none can replace them);
        the buyer is owed a refund."""
        if self.status not in (OrderStatus.PAID, OrderStatus.FULFILLING):
            raise IllegalTransition(
                resource="order", id=str(self.id), current=self.status, target=OrderStatus.CANCELED
            )
        self._move(OrderTransition.ABANDON, now)
        self.canceled_at, self.cancel_reason = now, reason

    def extend(self, until: datetime, now: datetime) -> None:
        """Hold a PENDING order's keys until `until`; ReservationExpired once it has expired,
        IllegalTransition when it is no longer PENDING."""
        if self.status is not OrderStatus.PENDING:
            raise IllegalTransition(
                resource="order", id=str(self.id), current=self.status, target=self.status
            )
        if self.is_expired(now):
            raise ReservationExpired(resource="order", id=str(self.id))
        self.reserved_until, self.updated_at = until, now

    def is_expired(self, now: datetime) -> bool:
        return self.status is OrderStatus.PENDING and now >= self.reserved_until
