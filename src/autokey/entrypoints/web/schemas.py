"""Wire shapes of the JSON API (camelCase) and the one cattrs converter of the HTTP edge."""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import attrs
import cattrs
from attrs import AttrsInstance
from cattrs.cols import is_sequence, list_structure_factory
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.currencies import MINOR_UNITS
from autokey.domain.model.keys import Key, KeyStatus, LineProblem, PoolCounts, UploadReport
from autokey.domain.model.merchant import (
    G2AOfferLink,
    MerchantNotification,
    Reservation,
    ReservationState,
    ReturnedKey,
)
from autokey.domain.model.offers import (
    MAX_AMOUNT_DIGITS,
    MAX_LOW_STOCK_THRESHOLD,
    Availability,
    DeliveryType,
    Money,
    OfferStatus,
    StockLevel,
)
from autokey.domain.model.orders import MAX_QUANTITY, Order, OrderStatus, UpstreamState
from autokey.domain.model.outbound import (
    Delivery,
    DeliveryStatus,
    EndpointStatus,
    OutboundEventType,
    WebhookEndpoint,
)
from autokey.domain.model.webhooks import MAX_EVENT_ID, WebhookEventType
from autokey.domain.services.inventory import PoolView
from autokey.domain.services.offers import OfferView
from autokey.domain.services.orders import DeliveredKey, OrderView, Sale

T = TypeVar("T", bound=AttrsInstance)


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def json_schema(**schema: Any) -> dict[str, Any]:
    """Field metadata for what a field's JSON Schema says beyond its type (bounds, a
    description): `attrs.field(metadata=json_schema(minimum=1))`."""
    return {"schema": schema}


def copy_fields(cls: type[T], source: object, **given: Any) -> T:
    """A `cls` whose fields are `given`, or else read from `source`'s attributes of the same
    names (wire classes name their fields as the domain does)."""
    copied = {n: getattr(source, n) for n in _field_names(cls) if n not in given}
    return cls(**copied, **given)


@functools.cache
def _field_names(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls))


def make_http_converter() -> cattrs.Converter:
    """camelCase keys, ISO-8601 datetimes, string UUIDs, enums by value; unknown request
    fields rejected.

    Unstructuring leaves datetimes, UUIDs and enum members as they are: the response
    encoder (`context.json_body`, orjson) writes them as that text, in C, a quarter of the
    cost of converting them here first."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    _strict_scalars(conv)
    for written_by_the_encoder in (datetime, UUID, enum.StrEnum):
        conv.register_unstructure_hook(written_by_the_encoder, identity)
    conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    conv.register_structure_hook(UUID, lambda v, _: parse_uuid(v))

    def renames(cls: type[Any]) -> dict[str, Any]:
        return {a.name: override(rename=to_camel(a.name)) for a in attrs.fields(cls)}

    conv.register_unstructure_hook_factory(
        attrs.has, lambda cls: make_dict_unstructure_fn(cls, conv, **renames(cls))
    )
    conv.register_structure_hook_factory(
        attrs.has,
        lambda cls: make_dict_structure_fn(
            cls, conv, _cattrs_forbid_extra_keys=True, **renames(cls)
        ),
    )
    return conv


def parse_uuid(value: Any) -> UUID:
    """A UUID written in ASCII; ValueError otherwise (`UUID()` itself reads any script's
    digits, so Arabic-Indic zeros would name the same resource as ASCII ones)."""
    if not (isinstance(value, str) and value.isascii()):
        raise ValueError("expected an ASCII UUID")
    return UUID(value)


def make_merchant_converter() -> cattrs.Converter:
    """G2A's contracts (the merchant API and the webhook events): snake_case keys as G2A
    sends them, strict JSON types, ISO-8601 datetimes; unknown fields are ignored (G2A adds
    fields without notice)."""
    conv = cattrs.Converter()
    _strict_scalars(conv)
    conv.register_unstructure_hook(datetime, datetime.isoformat)
    conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    return conv


def _strict_scalars(conv: cattrs.Converter) -> None:
    for scalar in (str, int, bool):
        conv.register_structure_hook(scalar, _strict(scalar))
    conv.register_structure_hook_factory(is_sequence, lambda t: _strict_list(t, conv))
    # Ahead of the str hooks: a StrEnum is a str too.
    conv.register_structure_hook(enum.StrEnum, _strict_enum)
    conv.register_unstructure_hook(enum.StrEnum, lambda member: member.value)


def _strict_enum(value: Any, kind: type[enum.StrEnum]) -> enum.StrEnum:
    """A member by its value, which must be a string: TypeError for another JSON type,
    ValueError for an unknown string."""
    if type(value) is not str:
        raise TypeError("expected a string")
    return kind(value)


def _strict(kind: type[Any]) -> Any:
    """cattrs coerces (5 -> "5"); on the wire a value must already have its JSON type."""

    def structure(value: Any, _: type[Any]) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}")
        return value

    return structure


def _strict_list(list_type: Any, conv: cattrs.Converter) -> Any:
    """A JSON array only: cattrs would happily iterate a string into a list of characters."""
    inner = list_structure_factory(list_type, conv)

    def structure(value: Any, target: Any) -> Any:
        if not isinstance(value, list):
            raise TypeError("expected an array")
        return inner(value, target)

    return structure


# ---- requests ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CreatePoolIn:
    name: str | None = None


@attrs.frozen(kw_only=True)
class UploadJsonIn:
    keys: list[str]


# ---- responses --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CountsOut:
    total_keys: int
    available_keys: int
    reserved_keys: int
    delivered_keys: int
    invalid_keys: int

    @classmethod
    def from_counts(cls, counts: PoolCounts) -> CountsOut:
        return cls(
            total_keys=counts.total,
            available_keys=counts.available,
            reserved_keys=counts.reserved,
            delivered_keys=counts.delivered,
            invalid_keys=counts.invalid,
        )


@attrs.frozen(kw_only=True)
class PoolOut(CountsOut):
    id: UUID
    name: str
    seller_id: UUID
    created_at: datetime

    @classmethod
    def of_view(cls, view: PoolView) -> PoolOut:
        counts = attrs.asdict(CountsOut.from_counts(view.counts))
        return copy_fields(cls, view.pool, **counts)


@attrs.frozen(kw_only=True)
class KeyOut:
    """Key metadata only: never plaintext, ciphertext or fingerprint."""

    id: UUID
    status: KeyStatus
    created_at: datetime
    reserved_at: datetime | None
    delivered_at: datetime | None
    order_id: UUID | None

    @classmethod
    def of(cls, key: Key) -> KeyOut:
        return copy_fields(cls, key)


@attrs.frozen(kw_only=True)
class LineErrorOut:
    line: int = attrs.field(metadata=json_schema(minimum=1))
    code: LineProblem


@attrs.frozen(kw_only=True)
class UploadReportOut(CountsOut):
    added: int
    duplicates: int
    invalid: int
    errors: list[LineErrorOut]
    errors_truncated: bool

    @classmethod
    def from_report(cls, report: UploadReport, counts: PoolCounts) -> UploadReportOut:
        errors = [LineErrorOut(line=e.line, code=e.code) for e in report.errors]
        counted = attrs.asdict(CountsOut.from_counts(counts))
        return copy_fields(cls, report, errors=errors, **counted)


@attrs.frozen(kw_only=True)
class MoneyIO:
    amount: str = attrs.field(
        metadata=json_schema(
            description="Decimal amount as a string, e.g. `19.99`. In requests: ASCII digits "
            f"only, at most {MAX_AMOUNT_DIGITS} before the point and no more after it than the "
            "currency's ISO 4217 minor units (`not_a_decimal`, `too_large`, `too_many_decimals`)."
        )
    )
    currency: str = attrs.field(
        metadata=json_schema(
            description="ISO 4217 code, e.g. `EUR`; requests accept "
            + ", ".join(f"`{c}`" for c in sorted(MINOR_UNITS))
            + " (`invalid_currency` otherwise)."
        )
    )

    @classmethod
    def of(cls, money: Money) -> MoneyIO:
        return cls(amount=f"{money.amount:f}", currency=money.currency)  # never exponent form

    def to_domain(self, field: str = "price") -> Money:
        return Money.parse(self.amount, self.currency, field)


@attrs.frozen(kw_only=True)
class OfferDraftIn:
    title: str
    price: MoneyIO
    delivery_type: DeliveryType
    id: UUID | None = None
    key_pool_id: UUID | None = None
    g2a_product_id: str | None = None
    max_price: MoneyIO | None = None
    low_stock_threshold: int | None = attrs.field(
        default=None,
        metadata=json_schema(
            minimum=0,
            maximum=MAX_LOW_STOCK_THRESHOLD,
            description="Stock is `low` at this many available keys or fewer; null: never low.",
        ),
    )


@attrs.frozen(kw_only=True)
class PublishIn:
    offer_id: UUID


@attrs.frozen(kw_only=True)
class OfferStatusIn:
    status: OfferStatus


@attrs.frozen(kw_only=True)
class OfferOut:
    id: UUID
    seller_id: UUID
    title: str
    price: MoneyIO
    delivery_type: DeliveryType
    key_pool_id: UUID | None
    status: OfferStatus
    availability: Availability
    auto_key_available_count: int
    created_at: datetime
    updated_at: datetime
    g2a_product_id: str | None
    max_price: MoneyIO | None
    low_stock_threshold: int | None
    stock_level: StockLevel = attrs.field(
        metadata=json_schema(
            description="AUTO_KEY: `out_of_stock` at no available key, `low` at "
            "`lowStockThreshold` or fewer; G2A and MANUAL offers are always `in_stock`."
        )
    )

    @classmethod
    def of(cls, view: OfferView) -> OfferOut:
        o = view.offer
        return copy_fields(
            cls,
            o,
            price=MoneyIO.of(o.price),
            max_price=MoneyIO.of(o.max_price) if o.max_price else None,
            availability=view.availability,
            auto_key_available_count=view.available_keys,
            stock_level=view.stock_level,
        )


@attrs.frozen(kw_only=True)
class CreateOrderIn:
    offer_id: UUID
    quantity: int = attrs.field(default=1, metadata=json_schema(minimum=1, maximum=MAX_QUANTITY))


@attrs.frozen(kw_only=True)
class DeliveredKeyOut:
    id: UUID
    key: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class OrderOut:
    id: UUID
    offer_id: UUID
    buyer_id: UUID
    seller_id: UUID
    quantity: int
    unit_price: MoneyIO
    total: MoneyIO
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    reserved_until: datetime
    paid_at: datetime | None
    fulfilled_at: datetime | None
    canceled_at: datetime | None
    cancel_reason: str | None
    upstream_order_id: str | None
    upstream_state: UpstreamState | None
    keys: list[DeliveredKeyOut] | None

    @classmethod
    def of(cls, order: Order, keys: Sequence[DeliveredKey] | None = None) -> OrderOut:
        return copy_fields(
            cls,
            order,
            unit_price=MoneyIO.of(order.unit_price),
            total=MoneyIO.of(order.total),
            keys=None
            if keys is None
            else [DeliveredKeyOut(id=k.id, key=k.plaintext) for k in keys],
        )

    @classmethod
    def of_view(cls, view: OrderView) -> OrderOut:
        delivered = view.order.status is OrderStatus.FULFILLED
        return cls.of(view.order, view.keys if delivered else None)


@attrs.frozen(kw_only=True)
class SaleOut:
    """One of a seller's orders: never key plaintext, only the delivered keys' ids."""

    order: OrderOut
    delivered_key_ids: list[UUID]

    @classmethod
    def of(cls, sale: Sale) -> SaleOut:
        return cls(order=OrderOut.of(sale.order), delivered_key_ids=list(sale.key_ids))


@attrs.frozen(kw_only=True)
class AuditEventOut:
    id: UUID
    occurred_at: datetime
    action: AuditAction
    actor: UUID | None
    pool_id: UUID | None
    order_id: UUID | None
    key_ids: list[UUID]
    details: dict[str, str | int]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return copy_fields(cls, event, key_ids=list(event.key_ids), details=dict(event.details))


@attrs.frozen(kw_only=True)
class RegisterWebhookIn:
    url: str
    event_types: list[str]


@attrs.frozen(kw_only=True)
class WebhookEndpointOut:
    id: UUID
    url: str
    event_types: list[OutboundEventType]
    status: EndpointStatus
    created_at: datetime
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None

    @classmethod
    def of(cls, e: WebhookEndpoint) -> WebhookEndpointOut:
        return copy_fields(cls, e, event_types=sorted(e.event_types))


# --- selling on G2A (what the seller sees of the merchant API) ----------------------------


@attrs.frozen(kw_only=True)
class G2AOfferLinkIn:
    g2a_offer_id: str


@attrs.frozen(kw_only=True)
class G2AOfferLinkOut:
    offer_id: UUID
    g2a_offer_id: str
    synced_size: int | None
    """The inventory size G2A last accepted for the offer."""
    synced_at: datetime | None
    sync_error: str | None
    """Why the last push failed (an error code), None after a success."""

    @classmethod
    def of(cls, link: G2AOfferLink) -> G2AOfferLinkOut:
        return copy_fields(cls, link)


@attrs.frozen(kw_only=True)
class RegisteredWebhookOut:
    """The endpoint, and its signing secret: shown in this response only."""

    endpoint: WebhookEndpointOut
    secret: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class DeliveryOut:
    id: UUID
    event_type: OutboundEventType
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return copy_fields(cls, d)


@attrs.frozen(kw_only=True)
class ReservationLineOut:
    product_id: str
    quantity: int
    order_id: UUID


@attrs.frozen(kw_only=True)
class ReservationOut:
    """A sale on G2A: `open` (keys held until `expiresAt`; past it, expired), `released` or
    `ordered` (with G2A's order id)."""

    id: str
    state: ReservationState
    lines: list[ReservationLineOut]
    created_at: datetime
    expires_at: datetime
    g2a_order_id: int | None
    ordered_at: datetime | None

    @classmethod
    def of(cls, r: Reservation) -> ReservationOut:
        lines = [copy_fields(ReservationLineOut, line) for line in r.lines]
        return copy_fields(cls, r, lines=lines)


@attrs.frozen(kw_only=True)
class ReturnedKeyOut:
    key_id: UUID
    reservation_id: str
    returned_at: datetime

    @classmethod
    def of(cls, returned: ReturnedKey) -> ReturnedKeyOut:
        return copy_fields(cls, returned)


@attrs.frozen(kw_only=True)
class NotificationOut:
    id: UUID
    type: str
    date: str
    message: str
    auction_id: int | None
    g2a_offer_id: str | None
    received_at: datetime

    @classmethod
    def of(cls, n: MerchantNotification) -> NotificationOut:
        return copy_fields(cls, n)


# --- G2A's webhook events (G2A's contract: snake_case, the merchant converter) ------------


@attrs.frozen(kw_only=True)
class G2AEventIn:
    """A G2A order event; fields G2A adds are ignored."""

    event_id: str = attrs.field(metadata=json_schema(minLength=1, maxLength=MAX_EVENT_ID))
    type: WebhookEventType
    order_id: str | None = attrs.field(
        default=None, metadata=json_schema(description="Required, except for `offer.stock_low`.")
    )
    occurred_at: datetime | None = attrs.field(
        default=None, metadata=json_schema(description="With its UTC offset.")
    )
    data: dict[str, Any] = attrs.field(factory=dict)
