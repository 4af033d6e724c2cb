"""Selling on G2A through its merchant stock contract (dropshipping): G2A calls autokey to
reserve keys of a seller's pool, then to order them. Credentials, access tokens,
reservations, returned keys and notifications."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime, timedelta

import attrs

from autokey.domain.model.errors import (
    IllegalTransition,
    InvalidInput,
    NotFound,
    OrderExists,
    ReservationExpired,
)
from autokey.domain.model.ids import KeyId, OfferId, OrderId, PoolId, SubjectId

G2A_CUSTOMER = SubjectId(uuid.uuid5(uuid.NAMESPACE_URL, "https://www.g2a.com/merchant"))
"""The buyer of every order G2A places: all of G2A's customers are one subject to autokey,
so an order's channel is `g2a` exactly when this is its buyer."""

PRODUCT_ID = re.compile(r"[1-9][0-9]{13}")
MAX_RESERVATION_ID = 36
MAX_G2A_OFFER_ID = 64
MAX_INVENTORY = 10_000
"""The most stock G2A shows for an offer (Import API `inventory.size`, and the merchant
contract's `stock[].inventory_size`)."""


def inventory_size(available: int) -> int:
    """The stock G2A is told of for `available` keys."""
    return min(available, MAX_INVENTORY)


def check_product_id(value: str, field: str = "g2a_product_id") -> str:
    """A G2A product id: 14 digits, no leading zero. InvalidInput naming `field` otherwise."""
    if not PRODUCT_ID.fullmatch(value):
        raise InvalidInput.of(field, "invalid_product_id")
    return value


class Channel(enum.StrEnum):
    """Where an order came from."""

    API = "api"
    """autokey's own buyer API."""
    G2A = "g2a"
    """G2A, through the merchant API."""


def channel_of(buyer_id: SubjectId) -> Channel:
    """`g2a` for orders G2A placed through the merchant API, `api` for the buyer API."""
    return Channel.G2A if buyer_id == G2A_CUSTOMER else Channel.API


@attrs.frozen(kw_only=True)
class MerchantCredential:
    """OAuth client credentials a seller gives G2A. Only a hash of the secret is kept."""

    client_id: str
    seller_id: SubjectId
    name: str
    secret_hash: bytes = attrs.field(repr=False)
    created_at: datetime
    revoked_at: datetime | None = None


@attrs.frozen(kw_only=True)
class MerchantAccessToken:
    """A short-lived bearer token of the merchant API, scoped to one seller; it opens no
    other endpoint (the buyer and seller API look tokens up elsewhere)."""

    token_hash: bytes = attrs.field(repr=False)
    client_id: str
    seller_id: SubjectId
    expires_at: datetime

    def caller(self, now: datetime) -> SubjectId | None:
        """The seller this token speaks for, or None once it has expired."""
        return self.seller_id if now < self.expires_at else None


class ReservationState(enum.StrEnum):
    OPEN = "open"
    """Keys held; an OPEN reservation past `expires_at` is expired (the sweeper frees its keys)."""
    RELEASED = "released"
    ORDERED = "ordered"


@attrs.frozen(kw_only=True)
class ReservationLine:
    """One item of G2A's reservation array, held by one autokey order (channel g2a)."""

    product_id: str
    quantity: int
    order_id: OrderId
    pool_id: PoolId


@attrs.define(kw_only=True)
class Reservation:
    """G2A's hold on keys of one seller, all-or-nothing over its lines. Its id doubles as the
    merchant order id once G2A orders it (the contract lets both be any string of ≤ 36)."""

    id: str
    seller_id: SubjectId
    state: ReservationState
    lines: tuple[ReservationLine, ...]
    created_at: datetime
    expires_at: datetime
    g2a_order_id: int | None = None
    ordered_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.state is ReservationState.OPEN and now >= self.expires_at

    def renew(self, now: datetime, ttl: timedelta) -> datetime:
        """Extend an OPEN, unexpired reservation by `ttl` from now. After expiry or release
        it no longer exists for G2A (NotFound); once ordered there is nothing to renew."""
        if self.state is ReservationState.ORDERED:
            raise IllegalTransition(
                resource="reservation", id=self.id, current=self.state, target="renewed"
            )
        if self.state is ReservationState.RELEASED or self.is_expired(now):
            raise NotFound(resource="reservation", id=self.id)
        self.expires_at = now + ttl
        return self.expires_at

    def release(self) -> bool:
        """OPEN -> RELEASED; True when the keys must be freed now. Releasing again is a no-op;
        an ordered reservation cannot be released."""
        if self.state is ReservationState.ORDERED:
            raise IllegalTransition(
                resource="reservation", id=self.id, current=self.state, target="released"
            )
        if self.state is ReservationState.RELEASED:
            return False
        self.state = ReservationState.RELEASED
        return True

    def order(self, g2a_order_id: int, now: datetime) -> None:
        """OPEN -> ORDERED. OrderExists when already ordered (G2A repeated POST /order),
        ReservationExpired after expiry, NotFound once released."""
        if self.state is ReservationState.ORDERED:
            raise OrderExists(resource="reservation", id=self.id, order_id=self.id)
        if self.state is ReservationState.RELEASED:
            raise NotFound(resource="reservation", id=self.id)
        if self.is_expired(now):
            raise ReservationExpired(resource="reservation", id=self.id)
        self.state, self.g2a_order_id, self.ordered_at = ReservationState.ORDERED, g2a_order_id, now


@attrs.frozen(kw_only=True)
class ReturnedKey:
    """A delivered key G2A handed back. It is never put on sale again automatically: a key
    shown to a customer may have been redeemed. The seller sees it and decides."""

    key_id: KeyId
    seller_id: SubjectId
    reservation_id: str
    returned_at: datetime


class NotificationType(enum.StrEnum):
    AUCTION_DEACTIVATED = "auction_deactivated"


@attrs.frozen(kw_only=True)
class MerchantNotification:
    """A notification G2A posted to the merchant API, kept for the seller to read."""

    id: uuid.UUID
    seller_id: SubjectId
    type: str
    date: str
    message: str
    auction_id: int | None
    g2a_offer_id: str | None
    received_at: datetime


@attrs.define(kw_only=True)
class G2AOfferLink:
    """An AUTO_KEY offer listed on G2A as `g2a_offer_id` (Import API), and what autokey last
    told G2A about its stock."""

    offer_id: OfferId
    seller_id: SubjectId
    g2a_offer_id: str
    synced_size: int | None = None
    synced_at: datetime | None = None
    sync_error: str | None = None

    @property
    def owner_id(self) -> SubjectId:
        return self.seller_id
