"""Signed marketplace webhooks (seed FR-006/FR-007; the contract's header scheme).

Verification order matters: size, headers, timestamp and signature are checked over the raw
bytes before anything parses the body; the nonce is remembered only for authentic requests.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import datetime

import attrs

TOLERANCE_S = 300
NONCE_RETENTION_S = 2 * TOLERANCE_S + 60
MAX_BODY_BYTES = 1024 * 1024
MAX_NONCE_LENGTH = 128
MAX_EVENT_ID = 200
"""The longest event id or marketplace order id an event may carry."""
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class Rejection(enum.StrEnum):
    """Why a webhook was refused. Values are the wire `code`s and metric labels."""

    INVALID_SIGNATURE = "invalid_signature"
    STALE_TIMESTAMP = "stale_timestamp"
    REPLAYED_NONCE = "replayed_nonce"
    MALFORMED_EVENT = "malformed_event"
    PAYLOAD_TOO_LARGE = "payload_too_large"


class WebhookEventType(enum.StrEnum):
    ORDER_PAID = "order.paid"
    ORDER_COMPLETE = "order.complete"
    ORDER_FAILED = "order.failed"
    ORDER_REFUNDED = "order.refunded"
    OFFER_STOCK_LOW = "offer.stock_low"


class WebhookOutcome(enum.StrEnum):
    APPLIED = "applied"
    """The linked order moved forward."""
    STALE = "stale"
    """The order was already at or past this state: nothing moved backwards."""
    UNMATCHED = "unmatched"
    """No local order has this marketplace order id; the event is kept for reconciliation."""
    RECORDED = "recorded"
    """An event that concerns no order (e.g. offer.stock_low)."""


@attrs.frozen(kw_only=True)
class WebhookRequest:
    """What arrived, untouched: raw body bytes and the three headers (None when missing)."""

    body: bytes = attrs.field(repr=False)
    timestamp: str | None
    nonce: str | None
    signature: str | None = attrs.field(repr=False)


def webhook_signature(secret: bytes, body: bytes, timestamp: str, nonce: str) -> str:
    """hex(HMAC-SHA256(key=secret, msg=raw_body + timestamp + nonce))."""
    message = body + timestamp.encode("ascii") + nonce.encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_webhook(
    request: WebhookRequest, secrets: Sequence[bytes], now: datetime
) -> Rejection | None:
    """Check size, headers, timestamp (±TOLERANCE_S, both ways) and the signature under any of
    `secrets` (current first, then the previous one during a rotation), in constant time.
    The signature must be exactly 64 lower-case hex digits. Does not look at the nonce store."""
    if len(request.body) > MAX_BODY_BYTES:
        return Rejection.PAYLOAD_TOO_LARGE
    ts, nonce, signature = request.timestamp, request.nonce, request.signature
    if ts is None or nonce is None or signature is None:
        return Rejection.INVALID_SIGNATURE
    if not _TIMESTAMP.fullmatch(ts):
        return Rejection.STALE_TIMESTAMP
    if abs(int(ts) - now.timestamp()) > TOLERANCE_S:
        return Rejection.STALE_TIMESTAMP
    if not (0 < len(nonce) <= MAX_NONCE_LENGTH and nonce.isprintable()):
        return Rejection.INVALID_SIGNATURE
    if not _SIGNATURE.fullmatch(signature):
        return Rejection.INVALID_SIGNATURE
    matches = [
        hmac.compare_digest(webhook_signature(s, request.body, ts, nonce), signature)
        for s in secrets
    ]
    return None if any(matches) else Rejection.INVALID_SIGNATURE


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """A verified event as stored. `payload` is the raw body (it holds no key material)."""

    event_id: str
    type: WebhookEventType
    upstream_order_id: str | None
    occurred_at: datetime | None
    received_at: datetime
    outcome: WebhookOutcome
    payload: bytes = attrs.field(repr=False)
