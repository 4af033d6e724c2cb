"""Orders and their state machine."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

import attrs

from autokey.domain.model.errors import (
    IllegalTransition,
    InvalidInput,
    OrderNotPaid,
    ReservationExpired,
)
from autokey.domain.model.ids import OfferId, OrderId, PoolId, SubjectId
from autokey.domain.model.offers import Money

MAX_QUANTITY = 100


class OrderStatus(enum.StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    FULFILLED = "FULFILLED"
    CANCELED = "CANCELED"


ORDER_TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.CANCELED}),
    OrderStatus.PAID: frozenset({OrderStatus.FULFILLED}),
    OrderStatus.FULFILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
}
"""Every legal order transition. FULFILLED and CANCELED are terminal."""


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

    @property
    def total(self) -> Money:
        return self.unit_price.times(self.quantity)

    def _move(self, target: OrderStatus, now: datetime) -> None:
        if target not in ORDER_TRANSITIONS[self.status]:
            raise IllegalTransition(
                resource="order", id=str(self.id), current=self.status, target=target
            )
        self.status, self.updated_at = target, now

    def pay(self, now: datetime) -> None:
        """PENDING -> PAID. A reservation that has expired cannot be paid."""
        if self.is_expired(now):
            raise ReservationExpired(resource="order", id=str(self.id))
        self._move(OrderStatus.PAID, now)
        self.paid_at = now

    def fulfill(self, now: datetime) -> None:
        """PAID -> FULFILLED; OrderNotPaid from PENDING or CANCELED."""
        if self.status is not OrderStatus.PAID:
            raise OrderNotPaid(resource="order", id=str(self.id), status=self.status)
        self._move(OrderStatus.FULFILLED, now)
        self.fulfilled_at = now

    def cancel(self, now: datetime, reason: str) -> None:
        """PENDING -> CANCELED; the caller releases the reserved keys in the same transaction."""
        self._move(OrderStatus.CANCELED, now)
        self.canceled_at, self.cancel_reason = now, reason

    def is_expired(self, now: datetime) -> bool:
        return self.status is OrderStatus.PENDING and now >= self.reserved_until
