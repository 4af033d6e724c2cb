"""RFC 9457 problem responses: one ordered table maps every error to status, code and title."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
from aiohttp import web

from autokey.domain.model import errors as e
from autokey.entrypoints.web.schemas import to_camel

PROBLEM_TYPE_BASE = "https://autokey.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
log = structlog.get_logger("autokey.http")


@attrs.frozen
class ProblemKind:
    status: int
    code: str
    title: str


# Most specific first: the first row whose class matches wins.
_ROWS: tuple[tuple[type[Exception], int, str, str], ...] = (
    (e.TooManyLines, 413, "too_many_lines", "Too many lines in one upload"),
    (e.BodyTooLarge, 413, "upload_too_large", "The upload is over its size cap"),
    (e.UploadTooLarge, 413, "too_many_keys", "Too many keys in one JSON upload"),
    (e.CorruptBody, 400, "corrupt_body", "The body cannot be decoded"),
    (e.InvalidInput, 400, "invalid_input", "The request is not valid"),
    (e.Unauthenticated, 401, "unauthenticated", "Authentication required"),
    (e.Forbidden, 403, "forbidden", "Not allowed for this role"),
    (e.NotFound, 404, "not_found", "Resource not found"),
    (e.KeyNotAvailable, 409, "key_not_available", "The key is not available"),
    (e.OrderNotPaid, 409, "order_not_paid", "The order is not paid"),
    (
        e.OrderKeysUnreadable,
        409,
        "order_keys_unreadable",
        "The order's keys could not be decrypted and none could replace them: "
        "the order was canceled and is owed a refund",
    ),
    (e.ReservationExpired, 409, "reservation_expired", "The order's reservation has expired"),
    (e.IdempotencyInFlight, 409, "idempotency_in_flight", "That Idempotency-Key is in use"),
    (e.IllegalTransition, 409, "illegal_transition", "The resource's state forbids this"),
    (e.DuplicateResource, 409, "duplicate", "The resource exists already"),
    (e.Conflict, 409, "conflict", "Conflicting state"),
    (e.UnstorableValue, 400, "unstorable_value", "A value in the request cannot be stored"),
    (e.IdempotencyKeyReused, 422, "idempotency_key_reused", "Idempotency-Key reused"),
    (e.RateLimited, 429, "rate_limited", "Too many requests; retry later"),
    (e.OfferNotAvailable, 400, "offer_not_available", "The offer is not available"),
    (e.OutOfStock, 400, "out_of_stock", "Not enough keys in stock"),
    (e.StockBusy, 503, "stock_busy", "Keys are momentarily busy; retry"),
    (e.WebhooksNotConfigured, 503, "webhooks_not_configured", "No webhook secret configured"),
    (e.PaymentsNotConfigured, 501, "payments_not_configured", "No payment provider configured"),
    (e.StoreUnavailable, 503, "store_unavailable", "The database is unavailable"),
    (e.StoreFault, 500, "internal_error", "Internal server error"),
    (
        e.KeyringMismatch,
        503,
        "master_key_unavailable",
        "This server is not configured with the master key that sealed these keys",
    ),
    (e.UpstreamUnavailable, 503, "upstream_unavailable", "The marketplace is unavailable"),
    (e.UpstreamError, 502, "upstream_error", "The marketplace call failed"),
    (e.KeyMaterialUnreadable, 500, "key_material_unreadable", "Key material unreadable"),
)
ERROR_TABLE = tuple((cls, ProblemKind(status, code, title)) for cls, status, code, title in _ROWS)
# G2A's merchant contract (/g2a/merchant) answers with its own statuses where they differ;
# every other error keeps its row above.
_MERCHANT_ROWS: tuple[tuple[type[Exception], int, str, str], ...] = (
    (e.OutOfStock, 400, "insufficient_stock", "Not enough keys in stock; nothing was reserved"),
    (e.OrderExists, 409, "order_exists", "An order already exists for this reservation"),
    (e.ReservationExpired, 410, "reservation_expired", "The reservation has expired"),
    (e.IllegalTransition, 400, "illegal_transition", "The reservation's state forbids this"),
)
MERCHANT_TABLE = tuple(
    (cls, ProblemKind(status, code, title)) for cls, status, code, title in _MERCHANT_ROWS
)
INTERNAL = ProblemKind(500, "internal_error", "Internal server error")
UNREADABLE_BODY = ProblemKind(400, "unreadable_body", "The request body cannot be decoded")
UNAVAILABLE_RETRY_AFTER_S = 1
"""Retry-After of a 503 whose error does not say: outages are usually short, and a retry
that comes too early is answered quickly (the database bounds every wait)."""
MALFORMED_REQUEST = ProblemKind(400, "malformed_request", "The HTTP request could not be parsed")
"""What aiohttp's HTTP parser rejects (entrypoints/web/runner.py); nothing of it is echoed."""
WEBHOOK_REJECTIONS = {
    "invalid_signature": ProblemKind(401, "invalid_signature", "Webhook signature is not valid"),
    "stale_timestamp": ProblemKind(401, "stale_timestamp", "Webhook timestamp out of tolerance"),
    "replayed_nonce": ProblemKind(401, "replayed_nonce", "Webhook nonce was seen before"),
    "malformed_event": ProblemKind(400, "malformed_event", "Webhook body is not a valid event"),
    "payload_too_large": ProblemKind(413, "payload_too_large", "Webhook body over 1 MiB"),
}
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def classify(error: Exception, *, merchant: bool = False) -> ProblemKind:
    if isinstance(error, e.WebhookRejected):
        return WEBHOOK_REJECTIONS[error.reason]
    for cls, kind in (*MERCHANT_TABLE, *ERROR_TABLE) if merchant else ERROR_TABLE:
        if isinstance(error, cls):
            return kind
    return INTERNAL


def _details(error: Exception) -> dict[str, Any]:
    """Public fields of a domain error, camelCased; nothing for infrastructure errors."""
    if not isinstance(error, e.DomainError):
        return {}
    if isinstance(error, e.WebhookRejected):
        return {}  # the code says it all; nothing about the request is echoed
    fields = attrs.asdict(error, recurse=True)
    if isinstance(error, e.InvalidInput):
        fields["errors"] = fields.pop("problems")
    return {to_camel(k): v for k, v in fields.items()}


def _headers(error: e.AutokeyError, kind: ProblemKind) -> dict[str, str]:
    headers = {}
    if kind.status == 401 and not isinstance(error, e.WebhookRejected):
        headers["WWW-Authenticate"] = "Bearer"
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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _problem_middleware(*, merchant: bool) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Errors to problems. The merchant API's use its table and add the contract's
    `message` (G2A reads `{"code", "message"}`)."""

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
            response = respond(kind, _details(error), headers=_headers(error, kind))
            if isinstance(error, e.CorruptBody | e.UploadTooLarge):
                response.force_close()  # the body may be unread or unreadable: no keep-alive
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status, "http_error")
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
