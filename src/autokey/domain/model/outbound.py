"""Outbound webhooks to sellers: endpoints they register, and one delivery per event and
endpoint, retried with exponential backoff and full jitter until it succeeds or its endpoint
has failed for `GIVE_UP_AFTER` (then the endpoint is disabled).

Deliveries are written in the same transaction as the change they announce (a
transactional outbox) and sent at least once by a dispatcher that leases them.
"""

from __future__ import annotations

import enum
import ipaddress
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import attrs

from autokey.domain.model.errors import InvalidInput
from autokey.domain.model.ids import DeliveryId, EndpointId, SubjectId
from autokey.domain.model.text import check_text

GIVE_UP_AFTER = timedelta(days=3)
FIRST_RETRY = timedelta(seconds=5)
LONGEST_WAIT = timedelta(hours=6)
MAX_URL_LENGTH = 2048
MAX_ENDPOINTS_PER_SELLER = 20


class OutboundEventType(enum.StrEnum):
    ORDER_FULFILLED = "order.fulfilled"
    UPLOAD_COMPLETED = "upload.completed"
    OFFER_LOW_STOCK = "offer.low_stock"
    OFFER_OUT_OF_STOCK = "offer.out_of_stock"
    OFFER_BACK_IN_STOCK = "offer.back_in_stock"


class EndpointStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """Given up: its endpoint failed for GIVE_UP_AFTER."""


def secret_context(endpoint_id: EndpointId) -> bytes:
    """Associated data that binds an endpoint's sealed signing secret to its row."""
    return b"webhook-endpoint:" + endpoint_id.bytes


def check_target(url: str, *, require_https: bool, allow_private: bool) -> str:
    """The URL a seller may register, or InvalidInput. Literal private addresses are refused
    here; names are checked again after DNS resolution, on every send."""
    check_text("url", url, max_length=MAX_URL_LENGTH)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise InvalidInput.of("url", "not_a_url") from None
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname:
        raise InvalidInput.of("url", "https_required" if require_https else "not_http_url")
    if parts.username or parts.password:
        raise InvalidInput.of("url", "credentials_in_url")
    if not allow_private:
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            if parts.hostname.lower() in ("localhost", "localhost.localdomain"):
                raise InvalidInput.of("url", "private_target") from None
        else:
            if not is_public(address):
                raise InvalidInput.of("url", "private_target")
    return url


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for loopback, private, link-local, multicast, reserved and unspecified ranges
    (an IPv4-mapped IPv6 address is judged as its IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@attrs.frozen(kw_only=True)
class SendOutcome:
    """What one attempt got: an HTTP status, or the code of what went wrong before one."""

    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@attrs.define(kw_only=True)
class WebhookEndpoint:
    id: EndpointId
    seller_id: SubjectId
    url: str
    event_types: frozenset[OutboundEventType]
    sealed_secret: bytes = attrs.field(repr=False)
    """The signing secret, sealed like a key: shown once at registration, never again."""
    status: EndpointStatus
    created_at: datetime
    failing_since: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    @property
    def owner_id(self) -> SubjectId:
        return self.seller_id

    def wants(self, event_type: OutboundEventType) -> bool:
        return self.status is EndpointStatus.ACTIVE and event_type in self.event_types

    def succeeded(self) -> None:
        self.failing_since = None

    def failed(self, now: datetime) -> bool:
        """Record a failed attempt; True when the endpoint has now failed for so long that it
        is disabled (its seller sees it, with the reason, in the endpoint list)."""
        self.failing_since = self.failing_since or now
        if now - self.failing_since < GIVE_UP_AFTER:
            return False
        self.status, self.disabled_at = EndpointStatus.DISABLED, now
        self.disabled_reason = "failing_for_3_days"
        return True

    def enable(self) -> None:
        self.status, self.failing_since = EndpointStatus.ACTIVE, None
        self.disabled_at = self.disabled_reason = None


@attrs.define(kw_only=True)
class Delivery:
    """One event for one endpoint. `body` is the exact JSON that is signed and sent."""

    id: DeliveryId
    endpoint_id: EndpointId
    seller_id: SubjectId
    event_type: OutboundEventType
    body: str
    status: DeliveryStatus
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    leased_until: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    def failed(
        self, now: datetime, status_code: int | None, error: str, rng: random.Random
    ) -> None:
        """Schedule the next attempt: exponential backoff with full jitter, capped."""
        self._attempted(now, status_code, error)
        ceiling = min(FIRST_RETRY * 2 ** min(self.attempts - 1, 20), LONGEST_WAIT)
        self.next_attempt_at = now + ceiling * rng.random()

    def record(
        self,
        outcome: SendOutcome,
        endpoint: WebhookEndpoint | None,
        now: datetime,
        rng: random.Random,
    ) -> bool:
        """Apply one attempt's outcome to the delivery and its endpoint. A failure on an
        endpoint that is gone, disabled, or disabled by this very failure ends the delivery.
        Returns True when this attempt disabled the endpoint."""
        if outcome.ok:
            self._attempted(now, outcome.status_code, None)
            self.status, self.delivered_at = DeliveryStatus.DELIVERED, now
            if endpoint is not None:
                endpoint.succeeded()
            return False
        self.failed(now, outcome.status_code, outcome.error or "http_error", rng)
        if endpoint is None or endpoint.status is not EndpointStatus.ACTIVE:
            self.status = DeliveryStatus.FAILED
            return False
        disabled = endpoint.failed(now)
        if disabled:
            self.status = DeliveryStatus.FAILED
        return disabled

    def replay(self, now: datetime) -> None:
        """Send again as soon as a dispatcher is free, whatever happened before."""
        self.status, self.next_attempt_at, self.leased_until = DeliveryStatus.PENDING, now, None

    def _attempted(self, now: datetime, status_code: int | None, error: str | None) -> None:
        self.attempts += 1
        self.last_attempt_at, self.leased_until = now, None
        self.last_status_code, self.last_error = status_code, error


def payload(
    event_type: OutboundEventType, occurred_at: datetime, data: Mapping[str, object]
) -> dict[str, object]:
    """The Standard Webhooks envelope: `type`, `timestamp` and `data`."""
    return {"type": event_type.value, "timestamp": occurred_at.isoformat(), "data": dict(data)}
