"""The OpenAPI 3.1 document, served at `GET /api/openapi.json`.

Body schemas are generated from the attrs wire classes of `schemas.py` (the classes the HTTP
converter really (un)structures), so a renamed or added field cannot drift from the document.
What the classes cannot say is kept by hand in `OPERATIONS`: one row per route with its
summary, body classes, statuses, problem codes and security. The document lists only the
operations whose route the app really has, and `tests/unit/web/test_openapi.py` fails when a
route has no row, so an undocumented route cannot ship.
"""

from __future__ import annotations

import enum
import functools
import json
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Union
from uuid import UUID

import attrs
from aiohttp import web

from autokey.domain.model.audit import AuditAction
from autokey.domain.model.currencies import MINOR_UNITS
from autokey.domain.model.keys import KeyStatus, LineProblem
from autokey.domain.model.merchant import Channel
from autokey.domain.model.offers import (
    MAX_AMOUNT_DIGITS,
    MAX_LOW_STOCK_THRESHOLD,
    Availability,
    DeliveryType,
    OfferStatus,
    StockLevel,
)
from autokey.domain.model.orders import MAX_QUANTITY, OrderStatus
from autokey.domain.model.pages import MAX_PAGE_SIZE
from autokey.entrypoints.web import schemas as s
from autokey.entrypoints.web.problems import (
    ERROR_TABLE,
    INTERNAL,
    PROBLEM_CONTENT_TYPE,
    UNREADABLE_BODY,
)

OPENAPI_PATH = "/api/openapi.json"
routes = web.RouteTableDef()

# ---- problem codes ----------------------------------------------------------------------

PROBLEM_STATUS: dict[str, int] = {
    INTERNAL.code: INTERNAL.status,
    UNREADABLE_BODY.code: UNREADABLE_BODY.status,
    # answered by aiohttp itself (problems.py maps them to these codes)
    "bad_request": 400,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    # webhook rejections and configuration
    "invalid_signature": 401,
    "stale_timestamp": 401,
    "replayed_nonce": 401,
    "malformed_event": 400,
    "webhooks_not_configured": 503,
    # the problem table has the last word
    **{kind.code: kind.status for _, kind in ERROR_TABLE},
}
AUTHENTICATED = ("unauthenticated", "forbidden", "rate_limited", "store_unavailable")
# A body's values reach the database, which may still refuse one (`unstorable_value`).
JSON_BODY = ("invalid_input", UNREADABLE_BODY.code, "unstorable_value", "payload_too_large")

# ---- JSON Schema from attrs classes ----------------------------------------------------


def _values(kind: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in kind]


FIELD_OVERRIDES: dict[tuple[type[Any], str], dict[str, Any]] = {
    (s.KeyOut, "status"): {"enum": _values(KeyStatus)},
    (s.LineErrorOut, "code"): {"enum": _values(LineProblem)},
    (s.LineErrorOut, "line"): {"minimum": 1},
    (s.OfferDraftIn, "delivery_type"): {"enum": _values(DeliveryType)},
    (s.OfferStatusIn, "status"): {"enum": _values(OfferStatus)},
    (s.OfferOut, "delivery_type"): {"enum": _values(DeliveryType)},
    (s.OfferOut, "status"): {"enum": _values(OfferStatus)},
    (s.OfferOut, "availability"): {"enum": _values(Availability)},
    (s.OfferOut, "stock_level"): {
        "enum": _values(StockLevel),
        "description": "AUTO_KEY: `out_of_stock` at no available key, `low` at "
        "`lowStockThreshold` or fewer; G2A and MANUAL offers are always `in_stock`.",
    },
    (s.OfferDraftIn, "low_stock_threshold"): {
        "minimum": 0,
        "maximum": MAX_LOW_STOCK_THRESHOLD,
        "description": "Stock is `low` at this many available keys or fewer; null: never low.",
    },
    (s.OrderOut, "status"): {"enum": _values(OrderStatus)},
    (s.AuditEventOut, "action"): {"enum": _values(AuditAction)},
    (s.CreateOrderIn, "quantity"): {"minimum": 1, "maximum": MAX_QUANTITY},
    (s.MoneyIO, "amount"): {
        "description": "Decimal amount as a string, e.g. `19.99`. In requests: ASCII digits "
        f"only, at most {MAX_AMOUNT_DIGITS} before the point and no more after it than the "
        "currency's ISO 4217 minor units (`not_a_decimal`, `too_large`, `too_many_decimals`)."
    },
    (s.MoneyIO, "currency"): {
        "description": "ISO 4217 code, e.g. `EUR`; requests accept "
        + ", ".join(f"`{c}`" for c in sorted(MINOR_UNITS))
        + " (`invalid_currency` otherwise)."
    },
}
"""What a field's Python type cannot say (the wire classes carry enums as plain strings)."""


class SchemaBuilder:
    """Turns attrs classes into JSON Schemas (2020-12, as OpenAPI 3.1 uses) in `components`."""

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Any]] = {}

    def ref(self, cls: type[Any], *, request: bool) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.components:
            self.components[name] = {}  # placeholder first: classes may nest
            self.components[name] = self._object(cls, request=request)
        return {"$ref": f"#/components/schemas/{name}"}

    def _object(self, cls: type[Any], *, request: bool) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            name = s.to_camel(field.name)
            schema = self.of_type(hints[field.name], request=request)
            schema.update(FIELD_OVERRIDES.get((cls, field.name), {}))
            properties[name] = schema
            # The converter writes every field of a response (None as null); a request may
            # leave out the fields that have a default.
            if not request or field.default is attrs.NOTHING:
                required.append(name)
        body: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
            body["description"] = cls.__doc__.strip()
        return body

    def of_type(self, tp: Any, *, request: bool) -> dict[str, Any]:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (Union, types.UnionType):
            options = [a for a in args if a is not type(None)]
            if len(options) != len(args) and len(options) == 1:
                inner = self.of_type(options[0], request=request)
                if "$ref" in inner:
                    return {"anyOf": [inner, {"type": "null"}]}
                kind = inner.pop("type")
                return {**inner, "type": [kind, "null"]}
            return {"anyOf": [self.of_type(a, request=request) for a in args]}
        if origin is list:
            return {"type": "array", "items": self.of_type(args[0], request=request)}
        if origin is dict:
            return {
                "type": "object",
                "additionalProperties": self.of_type(args[1], request=request),
            }
        if attrs.has(tp):
            return self.ref(tp, request=request)
        simple = _SIMPLE.get(tp)
        if simple is None:
            raise TypeError(f"no JSON Schema for {tp!r}: add it to openapi._SIMPLE")
        return dict(simple)


_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    float: {"type": "number"},
    UUID: {"type": "string", "format": "uuid"},
    datetime: {"type": "string", "format": "date-time"},
    type(None): {"type": "null"},
}

# ---- the hand-kept table of operations --------------------------------------------------


@attrs.frozen
class PageOf:
    """A keyset page `{"items": [...], "nextCursor": str | null}` of `item`."""

    item: type[Any]


@attrs.frozen(kw_only=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    status: int = 200
    response: type[Any] | PageOf | str | None = None
    """An attrs class, a page of one, a key of EXTRA_SCHEMAS, or None for no body."""
    response_media: str = "application/json"
    request: type[Any] | None = None
    request_required: bool = True
    text_upload: bool = False
    query: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    authenticated: bool = True
    idempotency_key: bool = False
    also: tuple[int, ...] = ()
    """Other success statuses with the same body (an offer draft saved again answers 200)."""
    csv: str | None = None
    """With `Accept: text/csv` the operation streams this CSV instead (the description)."""
    description: str | None = None


PAGED = ("limit", "cursor")
OPERATIONS: tuple[Operation, ...] = (
    # operations
    Operation(
        method="GET",
        path="/health",
        summary="Liveness: answers while the process runs; checks no dependency",
        tag="operations",
        response="Liveness",
        authenticated=False,
    ),
    Operation(
        method="GET",
        path="/health/ready",
        summary="Readiness: every dependency's state; 503 when a required one is down",
        tag="operations",
        response="Readiness",
        also=(503,),
        authenticated=False,
    ),
    Operation(
        method="GET",
        path=OPENAPI_PATH,
        summary="This OpenAPI document",
        tag="operations",
        response="OpenApiDocument",
        authenticated=False,
    ),
    Operation(
        method="GET",
        path="/docs",
        summary="Interactive API documentation (Swagger UI, served from the package)",
        tag="operations",
        response="Html",
        response_media="text/html",
        authenticated=False,
    ),
    # key pools
    Operation(
        method="POST",
        path="/key-pools",
        summary="Create a key pool (seller)",
        tag="key pools",
        status=201,
        response=s.PoolOut,
        request=s.CreatePoolIn,
        request_required=False,
        problems=JSON_BODY,
    ),
    Operation(
        method="GET",
        path="/key-pools",
        summary="The seller's key pools, with counts per status",
        tag="key pools",
        response=PageOf(s.PoolOut),
        query=PAGED,
        problems=("invalid_input",),
    ),
    Operation(
        method="GET",
        path="/key-pools/{pool_id}",
        summary="One key pool with its counts",
        tag="key pools",
        response=s.PoolOut,
        problems=("not_found",),
    ),
    Operation(
        method="POST",
        path="/key-pools/{pool_id}/keys/upload",
        summary="Upload keys as a JSON array or as text/plain, one key per line",
        tag="key pools",
        response=s.UploadReportOut,
        request=s.UploadJsonIn,
        text_upload=True,
        problems=(
            *JSON_BODY,
            "too_many_keys",
            "too_many_lines",
            "upload_too_large",
            "corrupt_body",
            "unsupported_media_type",
            "not_found",
        ),
    ),
    Operation(
        method="GET",
        path="/key-pools/{pool_id}/keys",
        summary="Key metadata of a pool (never the key itself)",
        tag="key pools",
        response=PageOf(s.KeyOut),
        query=("status_key", *PAGED),
        problems=("invalid_input", "not_found"),
    ),
    Operation(
        method="DELETE",
        path="/key-pools/{pool_id}/keys/{key_id}",
        summary="Invalidate an available key",
        tag="key pools",
        status=204,
        problems=("not_found", "key_not_available", "illegal_transition", "conflict"),
    ),
    Operation(
        method="GET",
        path="/key-pools/{pool_id}/events",
        summary="The pool's audit trail",
        tag="key pools",
        response=PageOf(s.AuditEventOut),
        query=(*PAGED, "since"),
        problems=("invalid_input", "not_found"),
        csv="The whole trail from `since` on, streamed: a header line "
        "(id,occurredAt,action,actor,poolId,orderId,keyIds,details), then one line per event.",
    ),
    # offers
    Operation(
        method="POST",
        path="/offers/draft",
        summary="Create a draft offer, or save an existing draft (with its id)",
        tag="offers",
        status=201,
        also=(200,),
        response=s.OfferOut,
        request=s.OfferDraftIn,
        problems=(*JSON_BODY, "not_found", "illegal_transition", "conflict", "duplicate"),
    ),
    Operation(
        method="POST",
        path="/offers/publish",
        summary="Publish an offer (status active)",
        tag="offers",
        response=s.OfferOut,
        request=s.PublishIn,
        problems=(*JSON_BODY, "not_found", "illegal_transition", "conflict"),
    ),
    Operation(
        method="PATCH",
        path="/offers/{offer_id}/status",
        summary="Set an offer's status",
        tag="offers",
        response=s.OfferOut,
        request=s.OfferStatusIn,
        problems=(*JSON_BODY, "not_found", "illegal_transition", "conflict"),
    ),
    Operation(
        method="GET",
        path="/seller/offers",
        summary="The seller's offers with live availability",
        tag="offers",
        response=PageOf(s.OfferOut),
        query=PAGED,
        problems=("invalid_input",),
    ),
    Operation(
        method="GET",
        path="/offers/{offer_id}",
        summary="One offer with live availability",
        tag="offers",
        response=s.OfferOut,
        problems=("not_found",),
    ),
    # orders
    Operation(
        method="POST",
        path="/orders",
        summary="Order an offer (buyer): reserves keys until `reservedUntil`",
        tag="orders",
        status=201,
        response=s.OrderOut,
        request=s.CreateOrderIn,
        idempotency_key=True,
        problems=(
            *JSON_BODY,
            "not_found",
            "offer_not_available",
            "out_of_stock",
            "stock_busy",
            "idempotency_in_flight",
            "idempotency_key_reused",
            "conflict",
        ),
    ),
    Operation(
        method="POST",
        path="/orders/{order_id}/pay",
        summary="Pay a pending order through the configured payment provider",
        tag="orders",
        response=s.OrderOut,
        idempotency_key=True,
        problems=(
            "not_found",
            "reservation_expired",
            "illegal_transition",
            "conflict",
            "payments_not_configured",
            "idempotency_in_flight",
            "idempotency_key_reused",
        ),
    ),
    Operation(
        method="POST",
        path="/orders/{order_id}/fulfill",
        summary="Deliver the keys of a paid order (again: the same keys)",
        tag="orders",
        response=s.OrderOut,
        idempotency_key=True,
        problems=(
            "not_found",
            "order_not_paid",
            "illegal_transition",
            "conflict",
            "key_not_available",
            "idempotency_in_flight",
            "idempotency_key_reused",
            "upstream_unavailable",
            "upstream_error",
            "order_keys_unreadable",
            "master_key_unavailable",
            "key_material_unreadable",
        ),
    ),
    Operation(
        method="POST",
        path="/orders/{order_id}/cancel",
        summary="Cancel a pending order and release its keys",
        tag="orders",
        response=s.OrderOut,
        idempotency_key=True,
        problems=(
            "not_found",
            "illegal_transition",
            "conflict",
            "idempotency_in_flight",
            "idempotency_key_reused",
        ),
    ),
    Operation(
        method="GET",
        path="/orders/{order_id}",
        summary="One order; a fulfilled order includes its keys",
        tag="orders",
        response=s.OrderOut,
        problems=("not_found", "key_material_unreadable"),
    ),
    Operation(
        method="GET",
        path="/seller/orders",
        summary="The seller's sales across offers, newest first (key ids, never plaintext)",
        tag="orders",
        response=PageOf(s.SaleOut),
        query=("status_order", "offerId", "channel", "since_order", "until_order", *PAGED),
        problems=("invalid_input", "forbidden"),
    ),
    Operation(
        method="GET",
        path="/orders",
        summary="The buyer's orders, newest first",
        tag="orders",
        response=PageOf(s.OrderOut),
        query=("status_order", *PAGED),
        problems=("invalid_input",),
    ),
    # seller webhooks
    Operation(
        method="POST",
        path="/seller/webhooks",
        summary="Register a webhook endpoint; the signing secret is in this response only",
        tag="seller webhooks",
        status=201,
        response=s.RegisteredWebhookOut,
        request=s.RegisterWebhookIn,
        problems=(*JSON_BODY, "forbidden"),
    ),
    Operation(
        method="GET",
        path="/seller/webhooks",
        summary="The seller's webhook endpoints (never their secrets)",
        tag="seller webhooks",
        response=PageOf(s.WebhookEndpointOut),
        problems=("forbidden",),
    ),
    Operation(
        method="GET",
        path="/seller/webhooks/{endpoint_id}/deliveries",
        summary="An endpoint's deliveries and their attempts, newest first",
        tag="seller webhooks",
        response=PageOf(s.DeliveryOut),
        query=PAGED,
        problems=("invalid_input", "not_found", "forbidden"),
    ),
    Operation(
        method="POST",
        path="/seller/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay",
        summary="Send a delivery again (re-enables a disabled endpoint)",
        tag="seller webhooks",
        response=s.DeliveryOut,
        problems=("not_found", "forbidden"),
    ),
    # webhooks
    Operation(
        method="POST",
        path="/webhooks/g2a",
        summary="Signed G2A order event (HMAC-SHA256, timestamp and nonce headers)",
        tag="webhooks",
        response="WebhookAck",
        request=None,
        authenticated=False,
        problems=(
            "invalid_signature",
            "stale_timestamp",
            "replayed_nonce",
            "malformed_event",
            UNREADABLE_BODY.code,
            "payload_too_large",
            "webhooks_not_configured",
            "unstorable_value",
            "store_unavailable",
        ),
        description=(
            "`X-G2A-Signature` is the hex HMAC-SHA256 of the raw body + `X-G2A-Timestamp` + "
            "`X-G2A-Nonce` under `G2A_API_HASH`. The body is read only after the signature, "
            "the timestamp (within 300 s) and the nonce (never seen) are verified. A repeated "
            "`event_id` answers 200 with status `duplicate` and changes nothing."
        ),
    ),
    # selling on G2A (the merchant API itself, /g2a/merchant, follows G2A's own contract)
    Operation(
        method="PUT",
        path="/offers/{offer_id}/g2a-offer",
        summary="List an AUTO_KEY offer on G2A as a G2A offer id (its stock is kept in sync)",
        tag="selling on G2A",
        response=s.G2AOfferLinkOut,
        request=s.G2AOfferLinkIn,
        problems=("invalid_input", "not_found", "duplicate"),
    ),
    Operation(
        method="GET",
        path="/offers/{offer_id}/g2a-offer",
        summary="The offer's G2A link: last stock G2A accepted and the last sync error",
        tag="selling on G2A",
        response=s.G2AOfferLinkOut,
        problems=("not_found",),
    ),
    Operation(
        method="GET",
        path="/seller/g2a/reservations",
        summary="The seller's sales on G2A: reservations G2A made, their state and order",
        tag="selling on G2A",
        response=PageOf(s.ReservationOut),
        query=PAGED,
        problems=("invalid_input",),
    ),
    Operation(
        method="GET",
        path="/seller/g2a/returned-keys",
        summary="Keys G2A returned; they stay delivered and are never resold automatically",
        tag="selling on G2A",
        response=PageOf(s.ReturnedKeyOut),
        query=PAGED,
        problems=("invalid_input",),
    ),
    Operation(
        method="GET",
        path="/seller/g2a/notifications",
        summary="Notifications G2A posted to the merchant API",
        tag="selling on G2A",
        response=PageOf(s.NotificationOut),
        query=PAGED,
        problems=("invalid_input",),
    ),
)

QUERY_PARAMETERS: dict[str, dict[str, Any]] = {
    "limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Page size.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 100},
    },
    "since": {
        "name": "since",
        "in": "query",
        "required": False,
        "description": "With `Accept: text/csv`: only events at or after this time.",
        "schema": {"type": "string", "format": "date-time"},
    },
    "cursor": {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "`nextCursor` of the previous page.",
        "schema": {"type": "string"},
    },
    "status_key": {
        "name": "status",
        "in": "query",
        "required": False,
        "description": "Only keys of this status (case-insensitive).",
        "schema": {"type": "string", "enum": _values(KeyStatus)},
    },
    "offerId": {
        "name": "offerId",
        "in": "query",
        "required": False,
        "description": "Only orders of this offer.",
        "schema": {"type": "string", "format": "uuid"},
    },
    "channel": {
        "name": "channel",
        "in": "query",
        "required": False,
        "description": "Only orders from autokey's buyer API (`api`) or from G2A (`g2a`).",
        "schema": {"type": "string", "enum": _values(Channel)},
    },
    "since_order": {
        "name": "since",
        "in": "query",
        "required": False,
        "description": "Only orders created at or after this time.",
        "schema": {"type": "string", "format": "date-time"},
    },
    "until_order": {
        "name": "until",
        "in": "query",
        "required": False,
        "description": "Only orders created before this time.",
        "schema": {"type": "string", "format": "date-time"},
    },
    "status_order": {
        "name": "status",
        "in": "query",
        "required": False,
        "description": "Only orders of this status (case-insensitive).",
        "schema": {"type": "string", "enum": _values(OrderStatus)},
    },
}

_ID_HEADER = {
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}
EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `code` is stable, switch on it.",
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "code": {"type": "string"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "code": {"type": "string"}},
                    "required": ["field", "code"],
                },
            },
        },
        "required": ["type", "title", "status", "code"],
        "additionalProperties": True,
    },
    "Liveness": {
        "type": "object",
        "properties": {"status": {"const": "ok"}},
        "required": ["status"],
    },
    "ComponentHealth": {
        "type": "object",
        "properties": {
            "status": {"enum": ["up", "down", "degraded", "disabled"]},
            "latencyMs": {"type": ["number", "null"]},
            "code": {"type": "string", "description": "Why the component is not up."},
        },
        "required": ["status", "latencyMs"],
        "additionalProperties": False,
    },
    "Readiness": {
        "type": "object",
        "properties": {
            "status": {"enum": ["ready", "degraded", "unavailable"]},
            "g2aEnvironment": {"type": ["string", "null"]},
            "schemaVersion": {"type": ["integer", "null"]},
            "components": {
                "type": "object",
                "properties": {
                    name: {"$ref": "#/components/schemas/ComponentHealth"}
                    for name in ("database", "idempotencyStore", "redis", "g2a", "g2aCircuit")
                },
                "required": ["database", "idempotencyStore", "redis", "g2a", "g2aCircuit"],
                "additionalProperties": False,
            },
        },
        "required": ["status", "g2aEnvironment", "schemaVersion", "components"],
        "additionalProperties": False,
    },
    "Html": {"type": "string"},
    "OpenApiDocument": {
        "type": "object",
        "properties": {"openapi": {"type": "string"}},
        "required": ["openapi"],
    },
    "WebhookAck": {
        "type": "object",
        "properties": {
            "status": {"enum": ["accepted", "duplicate"]},
            "outcome": {"type": "string"},
        },
        "required": ["status"],
    },
}


# ---- the document -----------------------------------------------------------------------


def route_keys(router: web.UrlDispatcher) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route of the router, HEAD excluded."""
    keys = set()
    for route in router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        keys.add((route.method, route.resource.canonical))
    return keys


def build_document(
    present: Iterable[tuple[str, str]] | None = None, operations: Iterable[Operation] = OPERATIONS
) -> dict[str, Any]:
    """The document for the operations whose (method, path) is in `present` (all if None)."""
    wanted = None if present is None else set(present)
    builder = SchemaBuilder()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        if wanted is not None and (op.method, op.path) not in wanted:
            continue
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, builder)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "autokey",
            "version": "0.1.0",
            "description": (
                "Digital game keys: encrypted key pools, offers, atomic order fulfillment.\n\n"
                "Every response carries `X-Request-ID` and `X-Correlation-ID` (the caller's "
                "values when valid: 1-128 printable ASCII characters). Errors are RFC 9457 "
                "`application/problem+json` bodies with a stable `code`."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in operations)],
        "paths": paths,
        "components": {
            "schemas": {**builder.components, **EXTRA_SCHEMAS},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token from `autokey token create --role ...`.",
                }
            },
            "headers": {
                "X-Request-ID": {"description": "This request's id.", **_ID_HEADER},
                "X-Correlation-ID": {
                    "description": "The id shared by every request of one flow.",
                    **_ID_HEADER,
                },
            },
            "parameters": {
                "X-Request-ID": {
                    "name": "X-Request-ID",
                    "in": "header",
                    "required": False,
                    "description": "Your id for this request, echoed back and logged.",
                    **_ID_HEADER,
                },
                "X-Correlation-ID": {
                    "name": "X-Correlation-ID",
                    "in": "header",
                    "required": False,
                    "description": "Your id for the whole flow, echoed back and logged.",
                    **_ID_HEADER,
                },
            },
        },
    }


def _operation(op: Operation, builder: SchemaBuilder) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": _responses(op, builder),
        "security": [{"bearer": []}] if op.authenticated else [],
    }
    if op.description:
        body["description"] = op.description
    if op.request is not None:
        content = {"application/json": {"schema": builder.ref(op.request, request=True)}}
        if op.text_upload:
            content["text/plain"] = {
                "schema": {
                    "type": "string",
                    "description": "One key per line; Content-Encoding gzip or deflate"
                    " accepted. Capped in bytes and lines (blank lines count) after decoding.",
                }
            }
        body["requestBody"] = {"required": op.request_required, "content": content}
    elif op.path == "/webhooks/g2a":
        body["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _WEBHOOK_EVENT}},
        }
    return body


_WEBHOOK_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "type": {
            "enum": [
                "order.paid",
                "order.complete",
                "order.failed",
                "order.refunded",
                "offer.stock_low",
            ]
        },
        "order_id": {"type": "string"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "data": {"type": "object"},
    },
    "required": ["event_id", "type"],
}


def _operation_id(op: Operation) -> str:
    words = [w.strip("{}") for w in op.path.strip("/").replace("-", "_").split("/") if w]
    return op.method.lower() + "".join(s.to_camel(w).capitalize() for w in words)


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"$ref": "#/components/parameters/X-Request-ID"},
        {"$ref": "#/components/parameters/X-Correlation-ID"},
    ]
    for segment in op.path.split("/"):
        if segment.startswith("{"):
            params.append(
                {
                    "name": segment.strip("{}"),
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                }
            )
    params.extend(QUERY_PARAMETERS[name] for name in op.query)
    if op.idempotency_key:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Repeat a write safely: the first response is replayed.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if op.path == "/webhooks/g2a":
        for name in ("X-G2A-Timestamp", "X-G2A-Nonce", "X-G2A-Signature"):
            params.append({"name": name, "in": "header", "required": False, "schema": {}})
    return params


_ID_HEADERS_REF = {
    "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"},
    "X-Correlation-ID": {"$ref": "#/components/headers/X-Correlation-ID"},
}


def _responses(op: Operation, builder: SchemaBuilder) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    schema = _response_schema(op.response, builder)
    for status in (op.status, *op.also):
        response: dict[str, Any] = {
            "description": _ok_description(status),
            "headers": _ID_HEADERS_REF,
        }
        if schema is not None:
            response["content"] = {op.response_media: {"schema": schema}}
        if op.csv is not None:
            response["content"]["text/csv"] = {"schema": {"type": "string", "description": op.csv}}
        if op.idempotency_key:
            response["headers"] = {
                **_ID_HEADERS_REF,
                "Idempotent-Replayed": {
                    "description": "`true` when this is the replay of an earlier response.",
                    "schema": {"enum": ["true", "false"]},
                },
            }
        responses[str(status)] = response
    codes = (*op.problems, *(AUTHENTICATED if op.authenticated else ()))
    for status, grouped in sorted(_by_status(codes).items()):
        responses[str(status)] = _problem_response(
            grouped, "Problem: " + ", ".join(f"`{c}`" for c in grouped)
        )
    responses["default"] = _problem_response(None, "Any other problem (e.g. `internal_error`).")
    return responses


def _ok_description(status: int) -> str:
    return {200: "OK", 201: "Created", 204: "No content", 503: "Not ready"}.get(status, "OK")


def _by_status(codes: Iterable[str]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        grouped.setdefault(PROBLEM_STATUS[code], []).append(code)
    return grouped


def _problem_response(codes: list[str] | None, description: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"$ref": "#/components/schemas/Problem"}
    if codes is not None:
        schema = {"allOf": [schema, {"properties": {"code": {"enum": codes}}}]}
    return {
        "description": description,
        "headers": _ID_HEADERS_REF,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
    }


def _response_schema(
    response: type[Any] | PageOf | str | None, builder: SchemaBuilder
) -> dict[str, Any] | None:
    if response is None:
        return None
    if isinstance(response, str):
        return {"$ref": f"#/components/schemas/{response}"}
    if isinstance(response, PageOf):
        name = f"PageOf{response.item.__name__}"
        builder.components[name] = {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": builder.ref(response.item, request=False)},
                "nextCursor": {"type": ["string", "null"]},
            },
            "required": ["items", "nextCursor"],
            "additionalProperties": False,
        }
        return {"$ref": f"#/components/schemas/{name}"}
    return builder.ref(response, request=False)


@functools.lru_cache(maxsize=4)
def _document_for(present: frozenset[tuple[str, str]]) -> bytes:
    return json.dumps(build_document(present)).encode()


@routes.get(OPENAPI_PATH)
async def openapi_json(request: web.Request) -> web.Response:
    """The document for the routes this app has (built once per set of routes)."""
    body = _document_for(frozenset(route_keys(request.app.router)))
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": "no-cache"}
    )


def problem_codes(document: Mapping[str, Any]) -> set[str]:
    """Every problem code the document names (for tests)."""
    found: set[str] = set()
    for item in document["paths"].values():
        for op in item.values():
            for response in op["responses"].values():
                for media in response.get("content", {}).values():
                    for part in media["schema"].get("allOf", [])[1:]:
                        found.update(part["properties"]["code"]["enum"])
    return found
