"""Offers: what a seller sells, at what price, delivered how."""

from __future__ import annotations

import enum
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation

import attrs

from autokey.domain.model.errors import IllegalTransition, InvalidInput, OfferNotAvailable
from autokey.domain.model.ids import OfferId, PoolId, SubjectId
from autokey.domain.model.merchant import check_product_id

_CURRENCY = re.compile(r"[A-Z]{3}")
MAX_TITLE_LENGTH = 200


class DeliveryType(enum.StrEnum):
    AUTO_KEY = "AUTO_KEY"
    """Keys come from the seller's pool."""
    G2A = "G2A"
    """Keys are bought on G2A when an order is fulfilled and recorded in the offer's pool."""
    MANUAL = "MANUAL"
    """Delivered by the seller outside autokey; not purchasable through the API."""


class OfferStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    INACTIVE = "inactive"


class Availability(enum.StrEnum):
    IN_STOCK = "in_stock"
    OUT_OF_STOCK = "out_of_stock"


@attrs.frozen(kw_only=True)
class Money:
    """A non-negative decimal amount (at most 4 places) in an ISO 4217 currency."""

    amount: Decimal
    currency: str

    @classmethod
    def parse(cls, amount: str, currency: str) -> Money:
        """Build from wire strings; raise InvalidInput naming the bad field."""
        try:
            value = Decimal(amount)
        except (InvalidOperation, TypeError):
            raise InvalidInput.of("price.amount", "not_a_decimal") from None
        exponent = value.as_tuple().exponent
        if not value.is_finite() or value < 0 or (isinstance(exponent, int) and exponent < -4):
            raise InvalidInput.of("price.amount", "invalid_amount")
        if not _CURRENCY.fullmatch(currency):
            raise InvalidInput.of("price.currency", "invalid_currency")
        return cls(amount=value, currency=currency)

    def times(self, quantity: int) -> Money:
        return Money(amount=self.amount * quantity, currency=self.currency)


@attrs.define(kw_only=True)
class Offer:
    """A seller's listing. `status` is the seller's choice; availability is computed from stock."""

    id: OfferId
    seller_id: SubjectId
    title: str
    price: Money
    delivery_type: DeliveryType
    key_pool_id: PoolId | None
    status: OfferStatus
    created_at: datetime
    updated_at: datetime
    g2a_product_id: str | None = None
    max_price: Money | None = None
    """The most a G2A-sourced key may cost upstream."""

    def __attrs_post_init__(self) -> None:
        if not 1 <= len(self.title.strip()) <= MAX_TITLE_LENGTH:
            raise InvalidInput.of("title", "invalid_length")
        if self.delivery_type is DeliveryType.AUTO_KEY:
            if self.key_pool_id is None:
                raise InvalidInput.of("keyPoolId", "required_for_auto_key")
            if self.g2a_product_id is not None:
                check_product_id(self.g2a_product_id)
        if self.delivery_type is DeliveryType.G2A:
            if self.key_pool_id is None:
                raise InvalidInput.of("keyPoolId", "required_for_g2a")
            if not self.g2a_product_id:
                raise InvalidInput.of("g2aProductId", "required_for_g2a")
            if self.max_price is None:
                raise InvalidInput.of("maxPrice", "required_for_g2a")

    def set_status(self, target: OfferStatus, now: datetime) -> None:
        """Publish (draft -> active) or move between active and inactive; nothing goes back
        to draft. Setting the current status again is a no-op."""
        if target is OfferStatus.DRAFT and self.status is not OfferStatus.DRAFT:
            raise IllegalTransition(
                resource="offer", id=str(self.id), current=self.status, target=target
            )
        self.status, self.updated_at = target, now

    @property
    def sold_on_g2a_as(self) -> str | None:
        """The G2A product under which G2A's merchant API reserves this offer's keys: set for
        ACTIVE AUTO_KEY offers with a g2aProductId, unique among a seller's such offers."""
        if self.status is OfferStatus.ACTIVE and self.delivery_type is DeliveryType.AUTO_KEY:
            return self.g2a_product_id
        return None

    @property
    def sources_upstream(self) -> bool:
        return self.delivery_type is DeliveryType.G2A

    def availability(self, available_keys: int) -> Availability:
        """AUTO_KEY stock is the pool's AVAILABLE keys; a G2A offer is bought on demand."""
        in_stock = self.delivery_type is not DeliveryType.AUTO_KEY or available_keys > 0
        return Availability.IN_STOCK if in_stock else Availability.OUT_OF_STOCK

    def ensure_purchasable(self) -> PoolId:
        """The pool the order's keys come from (or are recorded in, for G2A);
        OfferNotAvailable unless the offer is active and not MANUAL."""
        if (
            self.status is not OfferStatus.ACTIVE
            or self.key_pool_id is None
            or self.delivery_type is DeliveryType.MANUAL
        ):
            raise OfferNotAvailable(offer_id=str(self.id))
        return self.key_pool_id
