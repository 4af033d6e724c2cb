"""`POST /webhooks/g2a`: signed marketplace events (verification before any parsing)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import cattrs
import structlog
from aiohttp import web

from autokey.domain.model.errors import (
    StoreUnavailable,
    UnstorableValue,
    WebhookRejected,
    WebhooksNotConfigured,
)
from autokey.domain.model.ids import OrderId
from autokey.domain.model.webhooks import (
    MAX_BODY_BYTES,
    Rejection,
    WebhookEventType,
    WebhookRequest,
)
from autokey.domain.services.webhooks import ParsedEvent
from autokey.entrypoints.web.bodies import body_bytes
from autokey.entrypoints.web.context import container
from autokey.entrypoints.web.operations import Operation
from autokey.entrypoints.web.problems import UNREADABLE_BODY
from autokey.entrypoints.web.schemas import G2AEventIn

routes = web.RouteTableDef()
log = structlog.get_logger("autokey.webhooks")
BACKGROUND = web.AppKey("background_tasks", set[asyncio.Task[Any]])
G2A_CONVERTER = web.AppKey("g2a_converter", cattrs.Converter)
"""`schemas.make_merchant_converter()`: G2A's events follow G2A's contract."""


async def _read_body(request: web.Request) -> bytes:
    """At most MAX_BODY_BYTES + 1 decoded bytes: enough to know a body is too large."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise WebhookRejected(reason=Rejection.PAYLOAD_TOO_LARGE)
    try:
        return await body_bytes(request, MAX_BODY_BYTES)
    except web.HTTPRequestEntityTooLarge:
        raise WebhookRejected(reason=Rejection.PAYLOAD_TOO_LARGE) from None


def _parse(converter: cattrs.Converter, body: bytes) -> ParsedEvent:
    """The contract's event shape; anything else is a malformed_event."""
    try:
        event = converter.structure(json.loads(body), G2AEventIn)
    except (cattrs.BaseValidationError, ValueError, TypeError, RecursionError):
        raise WebhookRejected(reason=Rejection.MALFORMED_EVENT) from None
    needs_order = event.type is not WebhookEventType.OFFER_STOCK_LOW
    at = event.occurred_at
    if (needs_order and not event.order_id) or (at is not None and at.tzinfo is None):
        raise WebhookRejected(reason=Rejection.MALFORMED_EVENT)
    return ParsedEvent(
        event_id=event.event_id, type=event.type, upstream_order_id=event.order_id, occurred_at=at
    )


@routes.post("/webhooks/g2a")
@Operation(
    summary="Signed G2A order event (HMAC-SHA256, timestamp and nonce headers)",
    tag="webhooks",
    response="WebhookAck",
    request=G2AEventIn,
    g2a_body=True,
    headers=("X-G2A-Timestamp", "X-G2A-Nonce", "X-G2A-Signature"),
    authenticated=False,
    raises=(
        *(WebhookRejected(reason=reason) for reason in Rejection),
        UNREADABLE_BODY,
        WebhooksNotConfigured,
        UnstorableValue,
        StoreUnavailable,
    ),
    description="`X-G2A-Signature` is the hex HMAC-SHA256 of the raw body + `X-G2A-Timestamp`"
    " + `X-G2A-Nonce` under `G2A_API_HASH`. The body is read only after the signature, the"
    " timestamp (within 300 s) and the nonce (never seen) are verified. A repeated `event_id`"
    " answers 200 with status `duplicate` and changes nothing.",
)
async def g2a_webhook(request: web.Request) -> web.Response:
    hooks, metrics = container(request).webhooks(), container(request).domain_metrics()
    try:
        body = await _read_body(request)
        delivery = WebhookRequest(
            body=body,
            timestamp=request.headers.get("X-G2A-Timestamp"),
            nonce=request.headers.get("X-G2A-Nonce"),
            signature=request.headers.get("X-G2A-Signature"),
        )
        hooks.verify(delivery)
        event = _parse(request.app[G2A_CONVERTER], body)
        receipt = await hooks.receive(delivery.nonce or "", event, body)
    except WebhookRejected as rejected:
        log.warning("webhooks.rejected", reason=rejected.reason)
        metrics.webhook_outcome(rejected.reason)
        raise
    if receipt.duplicate:
        log.info("webhooks.duplicate", event_id=event.event_id)
        metrics.webhook_outcome("duplicate")
        return web.json_response({"status": "duplicate"})
    metrics.webhook_outcome(receipt.outcome or "recorded")
    log.info("webhooks.accepted", event_id=event.event_id, type=event.type, outcome=receipt.outcome)
    if receipt.key_ready and receipt.order_id is not None:
        _in_background(request.app, _advance(request.app, receipt.order_id))
    return web.json_response({"status": "accepted", "outcome": receipt.outcome})


async def _advance(app: web.Application, order_id: OrderId) -> None:
    from autokey.entrypoints.web.context import CONTAINER

    try:
        await app[CONTAINER].sourcing().advance(order_id)
    except Exception:
        log.exception("g2a.advance_failed", order_id=str(order_id))


def _in_background(app: web.Application, coro: Any) -> None:
    """Keep a reference until done (asyncio holds tasks weakly)."""
    tasks = app.setdefault(BACKGROUND, set())
    task = asyncio.create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
