"""RFC 9457 problem responses: one ordered table maps every error to status, code and title."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
from aiohttp import web

from autokey.domain.model import errors as e

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
    (e.ReservationExpired, 409, "reservation_expired", "The order's reservation has expired"),
    (e.IdempotencyInFlight, 409, "idempotency_in_flight", "That Idempotency-Key is in use"),
    (e.IllegalTransition, 409, "illegal_transition", "The resource's state forbids this"),
    (e.DuplicateResource, 409, "duplicate", "The resource exists already"),
    (e.Conflict, 409, "conflict", "Conflicting state"),
    (e.IdempotencyKeyReused, 422, "idempotency_key_reused", "Idempotency-Key reused"),
    (e.OfferNotAvailable, 400, "offer_not_available", "The offer is not available"),
    (e.OutOfStock, 400, "out_of_stock", "Not enough keys in stock"),
    (e.StockBusy, 503, "stock_busy", "Keys are momentarily busy; retry"),
    (e.WebhooksNotConfigured, 503, "webhooks_not_configured", "No webhook secret configured"),
    (e.PaymentsNotConfigured, 501, "payments_not_configured", "No payment provider configured"),
    (e.StoreUnavailable, 503, "store_unavailable", "The database is unavailable"),
    (e.UpstreamUnavailable, 503, "upstream_unavailable", "The marketplace is unavailable"),
    (e.UpstreamError, 502, "upstream_error", "The marketplace call failed"),
    (e.KeyMaterialUnreadable, 500, "key_material_unreadable", "Key material unreadable"),
)
ERROR_TABLE = tuple((cls, ProblemKind(status, code, title)) for cls, status, code, title in _ROWS)
INTERNAL = ProblemKind(500, "internal_error", "Internal server error")
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


def classify(error: Exception) -> ProblemKind:
    if isinstance(error, e.WebhookRejected):
        return WEBHOOK_REJECTIONS[error.reason]
    for cls, kind in ERROR_TABLE:
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
    return {_camel(k): v for k, v in fields.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


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


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except e.AutokeyError as error:
        kind = classify(error)
        if kind.status >= 500:
            log.error("http.request_failed", code=kind.code, error=type(error).__name__)
        bearer = kind.status == 401 and not isinstance(error, e.WebhookRejected)
        headers = {"WWW-Authenticate": "Bearer"} if bearer else None
        response = problem_response(kind, extra=_details(error), headers=headers)
        if isinstance(error, e.CorruptBody | e.UploadTooLarge):
            response.force_close()  # the body may be unread or unreadable: no keep-alive
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return problem_response(
            ProblemKind(exc.status, code, exc.reason),
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except Exception:
        log.exception("http.unhandled_error", path=request.path)
        return problem_response(INTERNAL)
