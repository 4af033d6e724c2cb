"""The append-only audit log."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

import attrs

from autokey.domain.model.ids import EventId, KeyId, OrderId, PoolId, SubjectId


class AuditAction(enum.StrEnum):
    KEYS_UPLOADED = "keys.uploaded"
    KEY_INVALIDATED = "key.invalidated"
    KEYS_RESERVED = "keys.reserved"
    KEYS_RELEASED = "keys.released"
    KEYS_DELIVERED = "keys.delivered"
    KEYS_REVEALED = "keys.revealed"
    KEY_DUPLICATE_BOUGHT = "key.duplicate_bought"
    """A key bought upstream whose plaintext was stored already: delivered anyway, for an
    operator to look into (key_ids: the bought key, then the one stored before)."""
    KEYS_RETURNED = "keys.returned"
    ORDER_CREATED = "order.created"
    ORDER_PAID = "order.paid"
    ORDER_FULFILLED = "order.fulfilled"
    ORDER_CANCELED = "order.canceled"
    ORDER_EXPIRED = "order.expired"
    OFFER_LOW_STOCK = "offer.low_stock"
    OFFER_OUT_OF_STOCK = "offer.out_of_stock"
    OFFER_BACK_IN_STOCK = "offer.back_in_stock"


@attrs.frozen(kw_only=True)
class AuditEvent:
    """Who did what, when, to which pool/order/keys. Never holds key material."""

    id: EventId
    occurred_at: datetime
    action: AuditAction
    actor: SubjectId | None
    pool_id: PoolId | None = None
    order_id: OrderId | None = None
    key_ids: tuple[KeyId, ...] = ()
    details: Mapping[str, str | int] = attrs.field(factory=dict)
