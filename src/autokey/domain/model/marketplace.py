"""A game-key marketplace (G2A) as the domain sees it: products we can buy, orders we place
there, the keys they yield, and the access token the selling side needs.

Pure values: no I/O, no wall clock. Prices are `Decimal`, never floats.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

TOKEN_REFRESH_MARGIN_CAP_S = 300
"""Refresh a token when less than min(this, lifetime / 5) seconds remain."""


class MarketplaceEnvironment(enum.StrEnum):
    SANDBOX = "sandbox"
    LIVE = "live"


class MarketplaceErrorCode(enum.StrEnum):
    """Marketplace codes the domain reacts to; any other code is kept as plain data."""

    KEY_NOT_READY = "ORD03"
    """The order is not paid yet or the key is not ready: try again later."""
    KEY_ALREADY_DOWNLOADED = "ORD004"
    """A key can be downloaded once; the second attempt answers this."""
    PAYMENT_REQUIRED = "ORD05"
    NOT_ENOUGH_FUNDS = "ORD112"
    PAYMENT_TOO_LATE = "ORD114"


@attrs.frozen(kw_only=True)
class ProductCategory:
    id: str
    name: str


@attrs.frozen(kw_only=True)
class MarketplaceProduct:
    """A product on sale on the marketplace; `min_price` is its lowest offer price."""

    id: str
    name: str
    min_price: Decimal
    qty: int
    available_to_buy: bool
    currency: str | None = None
    type: str | None = None
    slug: str | None = None
    retail_min_price: Decimal | None = None
    retail_min_base_price: Decimal | None = None
    region: str | None = None
    platform: str | None = None
    developer: str | None = None
    publisher: str | None = None
    release_date: str | None = None
    updated_at: str | None = None
    thumbnail: str | None = None
    categories: tuple[ProductCategory, ...] = ()

    @property
    def in_stock(self) -> bool:
        return self.available_to_buy and self.qty > 0


@attrs.frozen(kw_only=True)
class ProductFilters:
    """Optional filters of a product listing; None means "not filtered"."""

    product_id: str | None = None
    min_qty: int | None = None
    min_price_from: Decimal | None = None
    min_price_to: Decimal | None = None
    updated_at_from: str | None = None
    updated_at_to: str | None = None


@attrs.frozen(kw_only=True)
class ProductPage:
    """One page of a product listing. Pages are numbered from 1."""

    total: int
    page: int
    items: tuple[MarketplaceProduct, ...]

    @property
    def is_last(self) -> bool:
        """True when no page follows (the marketplace's `page * len(docs) >= total` rule)."""
        return not self.items or self.page * len(self.items) >= self.total


@attrs.frozen(kw_only=True)
class MarketplaceOrder:
    """An order placed on the marketplace; it holds stock for about 30 minutes until paid."""

    order_id: str
    price: Decimal
    currency: str


class MarketplaceOrderStatus(enum.StrEnum):
    """Order statuses the domain knows; `MarketplaceOrderDetails.status` may hold others."""

    NEW = "new"
    PAID = "paid"
    COMPLETE = "complete"


@attrs.frozen(kw_only=True)
class MarketplaceOrderDetails:
    order_id: str
    status: str
    """The marketplace's own status word; compare with `MarketplaceOrderStatus`."""
    price: Decimal
    currency: str

    @property
    def known_status(self) -> MarketplaceOrderStatus | None:
        try:
            return MarketplaceOrderStatus(self.status.lower())
        except ValueError:
            return None


@attrs.frozen(kw_only=True)
class PaymentResult:
    order_id: str
    paid: bool
    transaction_id: str | None


@attrs.frozen(kw_only=True)
class OfferStockPublication:
    """The marketplace accepted a stock update; `job_id` is None when it applied it at once."""

    offer_ref: str
    inventory_size: int
    job_id: str | None


JOB_FINISHED = frozenset({"complete", "completed", "done", "finished", "failed", "error"})


@attrs.frozen(kw_only=True)
class JobOutcome:
    """Where an asynchronous Import API job stands; `error_code` names why it failed."""

    job_id: str
    status: str
    error_code: str | None = None

    @property
    def finished(self) -> bool:
        return self.status.lower() in JOB_FINISHED


@attrs.frozen(kw_only=True)
class AccessToken:
    """A bearer token for the selling (Import) API. `value` is a secret."""

    value: str = attrs.field(repr=False)
    token_type: str
    expires_in: int
    issued_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + timedelta(seconds=self.expires_in)

    @property
    def refresh_margin_s(self) -> float:
        return min(float(TOKEN_REFRESH_MARGIN_CAP_S), self.expires_in / 5)

    def remaining_s(self, now: datetime) -> float:
        return (self.expires_at - now).total_seconds()

    def needs_refresh(self, now: datetime) -> bool:
        """True once less than the refresh margin remains (or the token has expired)."""
        return self.remaining_s(now) < self.refresh_margin_s


class TokenSource(enum.StrEnum):
    CACHE = "cache"
    FETCHED = "fetched"


@attrs.frozen(kw_only=True)
class TokenProbe:
    """What a health check learns about the selling API token, without the token itself."""

    source: TokenSource
    token_type: str
    expires_at: datetime
