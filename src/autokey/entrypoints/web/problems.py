"""RFC 9457 problem responses: one ordered table maps every error to status, code, title
and headers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
from aiohttp import web

from autokey.domain.model import errors as e
from autokey.domain.model.webhooks import Rejection
from autokey.entrypoints.web.schemas import to_camel

PROBLEM_TYPE_BASE = "https://autokey.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
log = structlog.get_logger("autokey.http")


@attrs.frozen
class ProblemKind:
    """How one kind of error is answered."""

    status: int
    code: str
    title: str
    reason: str | None = None
    """Answers only errors whose `reason` is this (a `WebhookRejected` says why in it)."""
    challenge: str | None = None
    """The WWW-Authenticate challenge of the answer."""
    echo: bool = True
    """Whether the body carries the error's fields; False: the code says all there is."""


def _rejected(reason: Rejection, status: int, title: str) -> tuple[type[Exception], ProblemKind]:
    return e.WebhookRejected, ProblemKind(status, reason.value, title, reason=reason, echo=False)


# Most specific first: the first row that matches wins.
ERROR_TABLE: tuple[tuple[type[Exception], ProblemKind], ...] = (
    (e.TooManyLines, ProblemKind(413, "too_many_lines", "Too many lines in one upload")),
    (e.BodyTooLarge, ProblemKind(413, "upload_too_large", "The upload is over its size cap")),
    (e.UploadTooLarge, ProblemKind(413, "too_many_keys", "Too many keys in one JSON upload")),
    (e.CorruptBody, ProblemKind(400, "corrupt_body", "The body cannot be decoded")),
    (e.InvalidInput, ProblemKind(400, "invalid_input", "The request is not valid")),
    (
        e.Unauthenticated,
        ProblemKind(401, "unauthenticated", "Authentication required", challenge="Bearer"),
    ),
    (e.Forbidden, ProblemKind(403, "forbidden", "Not allowed for this role")),
    (e.NotFound, ProblemKind(404, "not_found", "Resource not found")),
    (e.KeyNotAvailable, ProblemKind(409, "key_not_available", "The key is not available")),
    (e.OrderNotPaid, ProblemKind(409, "order_not_paid", "The order is not paid")),
    (
        e.OrderKeysUnreadable,
        ProblemKind(
            409,
            "order_keys_unreadable",
            "The order's keys could not be decrypted and none could replace them: "
            "the order was canceled and is owed a refund",
        ),
    ),
    (
        e.ReservationExpired,
        ProblemKind(409, "reservation_expired", "The order's reservation has expired"),
    ),
    (
        e.IdempotencyInFlight,
        ProblemKind(409, "idempotency_in_flight", "That Idempotency-Key is in use"),
    ),
    (
        e.IllegalTransition,
        ProblemKind(409, "illegal_transition", "The resource's state forbids this"),
    ),
    (e.DuplicateResource, ProblemKind(409, "duplicate", "The resource exists already")),
    (e.Conflict, ProblemKind(409, "conflict", "Conflicting state")),
    (
        e.UnstorableValue,
        ProblemKind(400, "unstorable_value", "A value in the request cannot be stored"),
    ),
    (e.IdempotencyKeyReused, ProblemKind(422, "idempotency_key_reused", "Idempotency-Key reused")),
    (e.RateLimited, ProblemKind(429, "rate_limited", "Too many requests; retry later")),
    (e.OfferNotAvailable, ProblemKind(400, "offer_not_available", "The offer is not available")),
    (e.OutOfStock, ProblemKind(400, "out_of_stock", "Not enough keys in stock")),
    (e.StockBusy, ProblemKind(503, "stock_busy", "Keys are momentarily busy; retry")),
    _rejected(Rejection.INVALID_SIGNATURE, 401, "Webhook signature is not valid"),
    _rejected(Rejection.STALE_TIMESTAMP, 401, "Webhook timestamp out of tolerance"),
    _rejected(Rejection.REPLAYED_NONCE, 401, "Webhook nonce was seen before"),
    _rejected(Rejection.MALFORMED_EVENT, 400, "Webhook body is not a valid event"),
    _rejected(Rejection.PAYLOAD_TOO_LARGE, 413, "Webhook body over 1 MiB"),
    (
        e.WebhooksNotConfigured,
        ProblemKind(503, "webhooks_not_configured", "No webhook secret configured"),
    ),
    (
        e.PaymentsNotConfigured,
        ProblemKind(501, "payments_not_configured", "No payment provider configured"),
    ),
    (e.StoreUnavailable, ProblemKind(503, "store_unavailable", "The database is unavailable")),
    (e.StoreFault, ProblemKind(500, "internal_error", "Internal server error")),
    (
        e.KeyringMismatch,
        ProblemKind(
            503,
            "master_key_unavailable",
            "This server is not configured with the master key that sealed these keys",
        ),
    ),
    (
        e.UpstreamUnavailable,
        ProblemKind(503, "upstream_unavailable", "The marketplace is unavailable"),
    ),
    (e.UpstreamError, ProblemKind(502, "upstream_error", "The marketplace call failed")),
    (
        e.KeyMaterialUnreadable,
        ProblemKind(500, "key_material_unreadable", "Key material unreadable"),
    ),
)
# G2A's merchant contract (/g2a/merchant) answers with its own statuses where they differ;
# every other error keeps its row above.
MERCHANT_TABLE: tuple[tuple[type[Exception], ProblemKind], ...] = (
    (
        e.OutOfStock,
        ProblemKind(400, "insufficient_stock", "Not enough keys in stock; nothing was reserved"),
    ),
    (
        e.OrderExists,
        ProblemKind(409, "order_exists", "An order already exists for this reservation"),
    ),
    (e.ReservationExpired, ProblemKind(410, "reservation_expired", "The reservation has expired")),
    (
        e.IllegalTransition,
        ProblemKind(400, "illegal_transition", "The reservation's state forbids this"),
    ),
)
INTERNAL = ProblemKind(500, "internal_error", "Internal server error")
UNREADABLE_BODY = ProblemKind(400, "unreadable_body", "The request body cannot be decoded")
UNAVAILABLE_RETRY_AFTER_S = 1
"""Retry-After of a 503 whose error does not say: outages are usually short, and a retry
that comes too early is answered quickly (the database bounds every wait)."""
MALFORMED_REQUEST = ProblemKind(400, "malformed_request", "The HTTP request could not be parsed")
"""What aiohttp's HTTP parser rejects (entrypoints/web/runner.py); nothing of it is echoed."""
_HEADER_FIELDS = {"idempotency_key": "Idempotency-Key"}
"""Fields the domain validates that come in a request header."""
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def classify(error: Exception, *, merchant: bool = False) -> ProblemKind:
    for cls, kind in (*MERCHANT_TABLE, *ERROR_TABLE) if merchant else ERROR_TABLE:
        if isinstance(error, cls) and kind.reason in (None, getattr(error, "reason", None)):
            return kind
    return INTERNAL


def _wire_field(name: str) -> str:
    """The wire name of a field the domain names: its camelCase (`key_pool_id` ->
    `keyPoolId`), or the header it is. A path the edge wrote (`body.items[0]`, `price.amount`)
    passes unchanged."""
    if name in _HEADER_FIELDS:
        return _HEADER_FIELDS[name]
    return to_camel(name) if name.isidentifier() else name


def _details(
    error: Exception, kind: ProblemKind, field_name: Callable[[str], str]
) -> dict[str, Any]:
    """Public fields of a domain error, camelCased, each invalid field under its wire name
    (`field_name`); nothing for infrastructure errors."""
    if not isinstance(error, e.DomainError) or not kind.echo:
        return {}
    fields = attrs.asdict(error, recurse=True)
    if isinstance(error, e.InvalidInput):
        fields["errors"] = [
            {**problem, "field": field_name(problem["field"])} for problem in fields.pop("problems")
        ]
    return {to_camel(k): v for k, v in fields.items()}


def _headers(error: e.AutokeyError, kind: ProblemKind) -> dict[str, str]:
    headers = {}
    if kind.challenge is not None:
        headers["WWW-Authenticate"] = kind.challenge
    retry_after = getattr(error, "retry_after_s", None)
    if retry_after is None and kind.status == 503:
        retry_after = UNAVAILABLE_RETRY_AFTER_S
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return headers


def problem_response(
    kind: ProblemKind,
    *,
    detail: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {
        "type": PROBLEM_TYPE_BASE + kind.code.replace("_", "-"),
        "title": kind.title,
        "status": kind.status,
        "code": kind.code,
        **({"detail": detail} if detail else {}),
        **(extra or {}),
    }
    return web.Response(
        status=kind.status,
        text=json.dumps(body, default=str),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def _same(name: str) -> str:
    return name


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _problem_middleware(*, merchant: bool) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Errors to problems. The merchant API's use its table, add the contract's `message`
    (G2A reads `{"code", "message"}`) and name fields as the domain does (the contract's
    names are snake_case too)."""
    field_name = _same if merchant else _wire_field

    def respond(kind: ProblemKind, extra: dict[str, Any], **kw: Any) -> web.Response:
        if merchant:
            extra = {**extra, "message": kind.title}
        return problem_response(kind, extra=extra, **kw)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except e.AutokeyError as error:
            kind = classify(error, merchant=merchant)
            if kind.status >= 500:
                log.error("http.request_failed", code=kind.code, error=type(error).__name__)
            response = respond(
                kind, _details(error, kind, field_name), headers=_headers(error, kind)
            )
            if isinstance(error, e.CorruptBody | e.UploadTooLarge):
                response.force_close()  # the body may be unread or unreadable: no keep-alive
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = HTTP_CODES.get(exc.status, "http_error")
            return respond(
                ProblemKind(exc.status, code, exc.reason),
                {},
                headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
            )
        except web.RequestPayloadError:  # corrupt Content-Encoding or framing, while reading
            # Nothing more of this body can be read: end it here (else aiohttp's lingering
            # read meets the same error again and logs it as unhandled) and close.
            request.content.feed_eof()
            response = respond(UNREADABLE_BODY, {})
            response.force_close()
            return response
        except Exception:
            log.exception("http.unhandled_error", path=request.path)
            return respond(INTERNAL, {})

    return middleware


problem_middleware = _problem_middleware(merchant=False)
merchant_problem_middleware = _problem_middleware(merchant=True)
