"""The SQLite edge of the domain: column codecs and one explicit converter per table.

Storage types: UUIDs are 16-byte BLOBs (memcmp order is UUID order), instants are fixed-width
ISO-8601 UTC text with microseconds (text order is time order), amounts are `Decimal` text
(exact round trip), enums are their values, audit key ids and details are JSON text.

`*_params` functions turn an entity into the named parameters of its INSERT/UPDATE
statements; `*_from_row` functions build the entity back from a `sqlite3.Row`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from autokey.domain.model import ids
from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.auth import ApiToken, Role
from autokey.domain.model.idempotency import IdempotencyRecord, IdempotencyState, StoredResponse
from autokey.domain.model.keys import Key, KeyPool, KeyStatus
from autokey.domain.model.offers import DeliveryType, Money, Offer, OfferStatus, StockLevel
from autokey.domain.model.orders import Order, OrderStatus, UpstreamState
from autokey.domain.model.outbound import (
    Delivery,
    DeliveryStatus,
    EndpointStatus,
    OutboundEventType,
    WebhookEndpoint,
)
from autokey.domain.model.webhooks import WebhookEvent, WebhookEventType, WebhookOutcome

Params = dict[str, Any]

# Bounds for keyset cursors: the empty blob sorts before every id, 17 x 0xFF after every id.
BEFORE_ALL_IDS = b""
AFTER_ALL_IDS = b"\xff" * 17


# --- column codecs ------------------------------------------------------------------------


def uuid_col(value: UUID) -> bytes:
    return value.bytes


def opt_uuid_col(value: UUID | None) -> bytes | None:
    return None if value is None else value.bytes


def uuid_val(blob: bytes) -> UUID:
    return UUID(bytes=blob)


def opt_uuid_val(blob: bytes | None) -> UUID | None:
    return None if blob is None else UUID(bytes=blob)


def time_col(value: datetime) -> str:
    """Aware datetime -> '2026-01-01T12:00:00.000000+00:00'. Naive datetimes are refused:
    the store cannot know which zone they meant."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime cannot be stored; use an aware UTC datetime")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def opt_time_col(value: datetime | None) -> str | None:
    return None if value is None else time_col(value)


def time_val(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def opt_time_val(text: str | None) -> datetime | None:
    return None if text is None else time_val(text)


def decimal_col(value: Decimal) -> str:
    return str(value)


def decimal_val(text: str) -> Decimal:
    return Decimal(text)


def cursor_after(after: UUID | None, *, descending: bool = False) -> bytes:
    """The bound for `id > ?` (or `id < ?` when descending) of a keyset page."""
    if after is not None:
        return after.bytes
    return AFTER_ALL_IDS if descending else BEFORE_ALL_IDS


# --- api_tokens ---------------------------------------------------------------------------


def token_params(token: ApiToken) -> Params:
    return {
        "id": uuid_col(token.id),
        "subject": uuid_col(token.subject),
        "role": token.role.value,
        "name": token.name,
        "secret_hash": token.secret_hash,
        "created_at": time_col(token.created_at),
        "revoked_at": opt_time_col(token.revoked_at),
    }


def token_from_row(row: sqlite3.Row) -> ApiToken:
    return ApiToken(
        id=ids.TokenId(uuid_val(row["id"])),
        subject=ids.SubjectId(uuid_val(row["subject"])),
        role=Role(row["role"]),
        name=row["name"],
        secret_hash=row["secret_hash"],
        created_at=time_val(row["created_at"]),
        revoked_at=opt_time_val(row["revoked_at"]),
        last_used_at=opt_time_val(row["last_used_at"]),
    )


# --- key_pools ----------------------------------------------------------------------------


def pool_params(pool: KeyPool) -> Params:
    return {
        "id": uuid_col(pool.id),
        "seller_id": uuid_col(pool.seller_id),
        "name": pool.name,
        "created_at": time_col(pool.created_at),
    }


def pool_from_row(row: sqlite3.Row) -> KeyPool:
    return KeyPool(
        id=ids.PoolId(uuid_val(row["id"])),
        seller_id=ids.SubjectId(uuid_val(row["seller_id"])),
        name=row["name"],
        created_at=time_val(row["created_at"]),
    )


# --- keys ---------------------------------------------------------------------------------


def key_insert_rows(keys: Sequence[Key]) -> list[tuple[Any, ...]]:
    """Positional values in `KEY_INSERT` column order, for the bulk upload path. The keys of
    an upload share their timestamps, so each distinct instant is encoded once."""
    times: dict[datetime | None, str | None] = {None: None}

    def encoded(value: datetime | None) -> str | None:
        if value not in times:
            times[value] = opt_time_col(value)
        return times[value]

    return [
        (
            key.id.bytes,
            key.pool_id.bytes,
            key.status.value,
            key.sealed,
            key.fingerprint,
            encoded(key.created_at),
            opt_uuid_col(key.order_id),
            encoded(key.reserved_at),
            encoded(key.delivered_at),
        )
        for key in keys
    ]


def key_state_params(key: Key) -> Params:
    """The mutable part of a key: never its material."""
    return {
        "id": uuid_col(key.id),
        "status": key.status.value,
        "order_id": opt_uuid_col(key.order_id),
        "reserved_at": opt_time_col(key.reserved_at),
        "delivered_at": opt_time_col(key.delivered_at),
    }


def key_from_row(row: sqlite3.Row) -> Key:
    order_id = opt_uuid_val(row["order_id"])
    return Key(
        id=ids.KeyId(uuid_val(row["id"])),
        pool_id=ids.PoolId(uuid_val(row["pool_id"])),
        status=KeyStatus(row["status"]),
        sealed=row["sealed"],
        fingerprint=row["fingerprint"],
        created_at=time_val(row["created_at"]),
        order_id=None if order_id is None else ids.OrderId(order_id),
        reserved_at=opt_time_val(row["reserved_at"]),
        delivered_at=opt_time_val(row["delivered_at"]),
    )


# --- offers -------------------------------------------------------------------------------


def offer_params(offer: Offer) -> Params:
    return {
        "id": uuid_col(offer.id),
        "seller_id": uuid_col(offer.seller_id),
        "title": offer.title,
        "price_amount": decimal_col(offer.price.amount),
        "price_currency": offer.price.currency,
        "delivery_type": offer.delivery_type.value,
        "key_pool_id": opt_uuid_col(offer.key_pool_id),
        "status": offer.status.value,
        "created_at": time_col(offer.created_at),
        "updated_at": time_col(offer.updated_at),
        "g2a_product_id": offer.g2a_product_id,
        "max_price_amount": None
        if offer.max_price is None
        else decimal_col(offer.max_price.amount),
        "max_price_currency": None if offer.max_price is None else offer.max_price.currency,
        "low_stock_threshold": offer.low_stock_threshold,
        "stock_level": offer.recorded_stock_level.value,
    }


def offer_from_row(row: sqlite3.Row) -> Offer:
    pool_id = opt_uuid_val(row["key_pool_id"])
    return Offer(
        id=ids.OfferId(uuid_val(row["id"])),
        seller_id=ids.SubjectId(uuid_val(row["seller_id"])),
        title=row["title"],
        price=Money(amount=decimal_val(row["price_amount"]), currency=row["price_currency"]),
        delivery_type=DeliveryType(row["delivery_type"]),
        key_pool_id=None if pool_id is None else ids.PoolId(pool_id),
        status=OfferStatus(row["status"]),
        created_at=time_val(row["created_at"]),
        updated_at=time_val(row["updated_at"]),
        g2a_product_id=row["g2a_product_id"],
        max_price=None
        if row["max_price_amount"] is None
        else Money(amount=decimal_val(row["max_price_amount"]), currency=row["max_price_currency"]),
        low_stock_threshold=row["low_stock_threshold"],
        recorded_stock_level=StockLevel(row["stock_level"]),
    )


# --- orders -------------------------------------------------------------------------------


def order_params(order: Order) -> Params:
    return {
        "id": uuid_col(order.id),
        "buyer_id": uuid_col(order.buyer_id),
        "seller_id": uuid_col(order.seller_id),
        "offer_id": uuid_col(order.offer_id),
        "pool_id": uuid_col(order.pool_id),
        "quantity": order.quantity,
        "unit_price_amount": decimal_col(order.unit_price.amount),
        "unit_price_currency": order.unit_price.currency,
        "status": order.status.value,
        "created_at": time_col(order.created_at),
        "updated_at": time_col(order.updated_at),
        "reserved_until": time_col(order.reserved_until),
        "paid_at": opt_time_col(order.paid_at),
        "fulfilled_at": opt_time_col(order.fulfilled_at),
        "canceled_at": opt_time_col(order.canceled_at),
        "cancel_reason": order.cancel_reason,
        "upstream_order_id": order.upstream_order_id,
        "upstream_state": None if order.upstream_state is None else order.upstream_state.value,
    }


def order_from_row(row: sqlite3.Row) -> Order:
    return Order(
        id=ids.OrderId(uuid_val(row["id"])),
        buyer_id=ids.SubjectId(uuid_val(row["buyer_id"])),
        seller_id=ids.SubjectId(uuid_val(row["seller_id"])),
        offer_id=ids.OfferId(uuid_val(row["offer_id"])),
        pool_id=ids.PoolId(uuid_val(row["pool_id"])),
        quantity=row["quantity"],
        unit_price=Money(
            amount=decimal_val(row["unit_price_amount"]), currency=row["unit_price_currency"]
        ),
        status=OrderStatus(row["status"]),
        created_at=time_val(row["created_at"]),
        updated_at=time_val(row["updated_at"]),
        reserved_until=time_val(row["reserved_until"]),
        paid_at=opt_time_val(row["paid_at"]),
        fulfilled_at=opt_time_val(row["fulfilled_at"]),
        canceled_at=opt_time_val(row["canceled_at"]),
        cancel_reason=row["cancel_reason"],
        upstream_order_id=row["upstream_order_id"],
        upstream_state=None
        if row["upstream_state"] is None
        else UpstreamState(row["upstream_state"]),
    )


# --- webhook_events -----------------------------------------------------------------------


def event_params(event: WebhookEvent) -> Params:
    return {
        "event_id": event.event_id,
        "type": event.type.value,
        "upstream_order_id": event.upstream_order_id,
        "occurred_at": opt_time_col(event.occurred_at),
        "received_at": time_col(event.received_at),
        "outcome": event.outcome.value,
        "payload": event.payload,
    }


def event_from_row(row: sqlite3.Row) -> WebhookEvent:
    return WebhookEvent(
        event_id=row["event_id"],
        type=WebhookEventType(row["type"]),
        upstream_order_id=row["upstream_order_id"],
        occurred_at=opt_time_val(row["occurred_at"]),
        received_at=time_val(row["received_at"]),
        outcome=WebhookOutcome(row["outcome"]),
        payload=row["payload"],
    )


# --- idempotency_records ------------------------------------------------------------------


def response_params(response: StoredResponse | None) -> Params:
    return {
        "response_status": None if response is None else response.status,
        "response_body": None if response is None else response.body,
    }


def idempotency_params(record: IdempotencyRecord) -> Params:
    return {
        "scope": record.scope,
        "key": record.key,
        "fingerprint": record.fingerprint,
        "state": record.state.value,
        "created_at": time_col(record.created_at),
        "locked_until": time_col(record.locked_until),
        "expires_at": time_col(record.expires_at),
        **response_params(record.response),
    }


def claim_params(claim: IdempotencyRecord) -> Params:
    return {
        "scope": claim.scope,
        "key": claim.key,
        "locked_until": time_col(claim.locked_until),
    }


def idempotency_from_row(row: sqlite3.Row) -> IdempotencyRecord:
    status = row["response_status"]
    return IdempotencyRecord(
        scope=row["scope"],
        key=row["key"],
        fingerprint=row["fingerprint"],
        state=IdempotencyState(row["state"]),
        created_at=time_val(row["created_at"]),
        locked_until=time_val(row["locked_until"]),
        expires_at=time_val(row["expires_at"]),
        response=None
        if status is None
        else StoredResponse(status=status, body=row["response_body"]),
    )


# --- audit_events -------------------------------------------------------------------------


def audit_params(event: AuditEvent) -> Params:
    return {
        "id": uuid_col(event.id),
        "occurred_at": time_col(event.occurred_at),
        "action": event.action.value,
        "actor": opt_uuid_col(event.actor),
        "pool_id": opt_uuid_col(event.pool_id),
        "order_id": opt_uuid_col(event.order_id),
        "key_ids": json.dumps([str(k) for k in event.key_ids]),
        "details": json.dumps(dict(event.details), sort_keys=True),
    }


def audit_from_row(row: sqlite3.Row) -> AuditEvent:
    actor = opt_uuid_val(row["actor"])
    pool_id = opt_uuid_val(row["pool_id"])
    order_id = opt_uuid_val(row["order_id"])
    return AuditEvent(
        id=ids.EventId(uuid_val(row["id"])),
        occurred_at=time_val(row["occurred_at"]),
        action=AuditAction(row["action"]),
        actor=None if actor is None else ids.SubjectId(actor),
        pool_id=None if pool_id is None else ids.PoolId(pool_id),
        order_id=None if order_id is None else ids.OrderId(order_id),
        key_ids=tuple(ids.KeyId(UUID(k)) for k in json.loads(row["key_ids"])),
        details=json.loads(row["details"]),
    )


# --- webhook_endpoints and webhook_deliveries ----------------------------------------------


def endpoint_params(e: WebhookEndpoint) -> Params:
    return {
        "id": uuid_col(e.id),
        "seller_id": uuid_col(e.seller_id),
        "url": e.url,
        "event_types": " ".join(sorted(t.value for t in e.event_types)),
        "sealed_secret": e.sealed_secret,
        "status": e.status.value,
        "created_at": time_col(e.created_at),
        "failing_since": opt_time_col(e.failing_since),
        "disabled_at": opt_time_col(e.disabled_at),
        "disabled_reason": e.disabled_reason,
    }


def endpoint_from_row(row: sqlite3.Row) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=ids.EndpointId(uuid_val(row["id"])),
        seller_id=ids.SubjectId(uuid_val(row["seller_id"])),
        url=row["url"],
        event_types=frozenset(OutboundEventType(t) for t in row["event_types"].split()),
        sealed_secret=row["sealed_secret"],
        status=EndpointStatus(row["status"]),
        created_at=time_val(row["created_at"]),
        failing_since=opt_time_val(row["failing_since"]),
        disabled_at=opt_time_val(row["disabled_at"]),
        disabled_reason=row["disabled_reason"],
    )


def delivery_params(d: Delivery) -> Params:
    return {
        "id": uuid_col(d.id),
        "endpoint_id": uuid_col(d.endpoint_id),
        "seller_id": uuid_col(d.seller_id),
        "event_type": d.event_type.value,
        "body": d.body,
        "status": d.status.value,
        "created_at": time_col(d.created_at),
        "next_attempt_at": time_col(d.next_attempt_at),
        "attempts": d.attempts,
        "leased_until": opt_time_col(d.leased_until),
        "last_attempt_at": opt_time_col(d.last_attempt_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "delivered_at": opt_time_col(d.delivered_at),
    }


def delivery_from_row(row: sqlite3.Row) -> Delivery:
    return Delivery(
        id=ids.DeliveryId(uuid_val(row["id"])),
        endpoint_id=ids.EndpointId(uuid_val(row["endpoint_id"])),
        seller_id=ids.SubjectId(uuid_val(row["seller_id"])),
        event_type=OutboundEventType(row["event_type"]),
        body=row["body"],
        status=DeliveryStatus(row["status"]),
        created_at=time_val(row["created_at"]),
        next_attempt_at=time_val(row["next_attempt_at"]),
        attempts=row["attempts"],
        leased_until=opt_time_val(row["leased_until"]),
        last_attempt_at=opt_time_val(row["last_attempt_at"]),
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        delivered_at=opt_time_val(row["delivered_at"]),
    )
