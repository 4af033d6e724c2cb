"""Offers: what a seller sells, at what price, delivered how."""

from __future__ import annotations

import enum
import re
from datetime import datetime
from decimal import MAX_PREC, Context, Decimal, Inexact, Rounded
from typing import Any

import attrs

from autokey.domain.model.currencies import MINOR_UNITS
from autokey.domain.model.errors import IllegalTransition, InvalidInput, OfferNotAvailable
from autokey.domain.model.ids import OfferId, PoolId, SubjectId
from autokey.domain.model.merchant import check_product_id
from autokey.domain.model.text import check_text

_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
MAX_AMOUNT_DIGITS = 15
"""Digits before the point: prices stay far inside every store's numeric range."""
MAX_TITLE_LENGTH = 200
MAX_PRODUCT_ID_LENGTH = 64


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


class StockLevel(enum.StrEnum):
    IN_STOCK = "in_stock"
    LOW = "low"
    OUT_OF_STOCK = "out_of_stock"


MAX_LOW_STOCK_THRESHOLD = 1_000_000


_EXACT = Context(prec=MAX_PREC, traps=[Inexact, Rounded])
"""Arithmetic that keeps every digit of its result (the precision only bounds what may be
kept, it costs nothing), and would trap rather than round."""


@attrs.frozen(kw_only=True)
class Money:
    """A non-negative decimal amount in a currency of `MINOR_UNITS`. Arithmetic is exact."""

    amount: Decimal
    currency: str

    @classmethod
    def parse(cls, amount: str, currency: str, field: str = "price") -> Money:
        """Build from wire strings: plain ASCII decimal notation (no sign, exponent, separator
        or other digits), at most MAX_AMOUNT_DIGITS before the point and the currency's minor
        units after it. InvalidInput naming the bad field otherwise."""
        if currency not in MINOR_UNITS:
            raise InvalidInput.of(f"{field}.currency", "invalid_currency")
        if not (parts := _AMOUNT.fullmatch(amount)):
            raise InvalidInput.of(f"{field}.amount", "not_a_decimal")
        whole, fraction = parts.group(1).lstrip("0"), parts.group(2) or ""
        if len(whole) > MAX_AMOUNT_DIGITS:
            raise InvalidInput.of(f"{field}.amount", "too_large")
        if len(fraction) > MINOR_UNITS[currency]:
            raise InvalidInput.of(f"{field}.amount", "too_many_decimals")
        return cls(amount=Decimal(amount), currency=currency)

    def times(self, quantity: int) -> Money:
        """Exact at any size: the product keeps all its digits, and rounding would trap."""
        return Money(amount=_EXACT.multiply(self.amount, quantity), currency=self.currency)


@attrs.frozen(kw_only=True)
class OfferDraft:
    """A seller's create-or-update request; `id` set means update."""

    id: OfferId | None
    title: str
    price: Money
    delivery_type: DeliveryType
    key_pool_id: PoolId | None
    g2a_product_id: str | None = None
    max_price: Money | None = None
    low_stock_threshold: int | None = None

    def terms(self) -> dict[str, Any]:
        """The offer fields the draft sets."""
        fields = attrs.asdict(self, recurse=False, filter=lambda a, _: a.name != "id")
        return {**fields, "title": self.title.strip()}


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
    low_stock_threshold: int | None = None
    """Stock is `low` at this many AVAILABLE keys or fewer (and more than none)."""
    recorded_stock_level: StockLevel = StockLevel.IN_STOCK
    """The level last announced; a change is announced once, by `record_stock_level`."""

    def __attrs_post_init__(self) -> None:
        if self.low_stock_threshold is not None and not (
            0 <= self.low_stock_threshold <= MAX_LOW_STOCK_THRESHOLD
        ):
            raise InvalidInput.of("low_stock_threshold", "out_of_range")
        check_text("title", self.title, max_length=MAX_TITLE_LENGTH)
        if self.g2a_product_id is not None:
            check_text("g2a_product_id", self.g2a_product_id, max_length=MAX_PRODUCT_ID_LENGTH)
        if self.delivery_type is DeliveryType.AUTO_KEY:
            if self.key_pool_id is None:
                raise InvalidInput.of("key_pool_id", "required_for_auto_key")
            if self.g2a_product_id is not None:
                check_product_id(self.g2a_product_id)
        if self.delivery_type is DeliveryType.G2A:
            if self.key_pool_id is None:
                raise InvalidInput.of("key_pool_id", "required_for_g2a")
            if not self.g2a_product_id:
                raise InvalidInput.of("g2a_product_id", "required_for_g2a")
            if self.max_price is None:
                raise InvalidInput.of("max_price", "required_for_g2a")

    @classmethod
    def from_draft(
        cls, draft: OfferDraft, *, id: OfferId, seller_id: SubjectId, now: datetime
    ) -> Offer:
        """A new offer, in DRAFT, on the draft's terms."""
        return cls(
            id=id,
            seller_id=seller_id,
            status=OfferStatus.DRAFT,
            created_at=now,
            updated_at=now,
            **draft.terms(),
        )

    def revised(self, draft: OfferDraft, now: datetime) -> Offer:
        """This offer on the draft's terms, checked as a new one is; its status is kept."""
        return attrs.evolve(self, updated_at=now, **draft.terms())

    @property
    def owner_id(self) -> SubjectId:
        return self.seller_id

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

    def stock_level(self, available_keys: int) -> StockLevel:
        """AUTO_KEY offers: `out_of_stock` at no AVAILABLE key, `low` at the threshold or
        below, else `in_stock`. G2A offers are bought on demand and MANUAL ones delivered
        outside autokey: always `in_stock`."""
        if self.delivery_type is not DeliveryType.AUTO_KEY:
            return StockLevel.IN_STOCK
        if available_keys <= 0:
            return StockLevel.OUT_OF_STOCK
        if self.low_stock_threshold is not None and available_keys <= self.low_stock_threshold:
            return StockLevel.LOW
        return StockLevel.IN_STOCK

    def record_stock_level(self, available_keys: int) -> StockLevel | None:
        """Remember the live level; return it when it differs from the one recorded (a
        crossing to announce), None when nothing changed."""
        level = self.stock_level(available_keys)
        if level is self.recorded_stock_level:
            return None
        self.recorded_stock_level = level
        return level

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
