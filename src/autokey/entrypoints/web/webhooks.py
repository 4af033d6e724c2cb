"""`POST /webhooks/g2a`: signed marketplace events (verification before any parsing)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from autokey.domain.model.errors import WebhookRejected
from autokey.domain.model.ids import OrderId
from autokey.domain.model.webhooks import (
    MAX_BODY_BYTES,
    Rejection,
    WebhookEventType,
    WebhookRequest,
)
from autokey.domain.services.webhooks import ParsedEvent
from autokey.entrypoints.web.context import container

routes = web.RouteTableDef()
log = structlog.get_logger("autokey.webhooks")
BACKGROUND = web.AppKey("background_tasks", set[asyncio.Task[Any]])


async def _read_body(request: web.Request) -> bytes:
    """At most MAX_BODY_BYTES + 1 bytes: enough to know a body is too large, never more."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise WebhookRejected(reason=Rejection.PAYLOAD_TOO_LARGE)
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise WebhookRejected(reason=Rejection.PAYLOAD_TOO_LARGE)
    return bytes(body)


def _parse(body: bytes) -> ParsedEvent:
    """The contract's event shape; anything else is a malformed_event."""
    try:
        data = json.loads(body)
        event_id, kind = data["event_id"], WebhookEventType(data["type"])
        order_id, occurred = data.get("order_id"), data.get("occurred_at")
        if not isinstance(event_id, str):
            raise ValueError("event_id")
        if order_id is not None and not isinstance(order_id, str):
            raise ValueError("order_id")
        if kind is not WebhookEventType.OFFER_STOCK_LOW and not order_id:
            raise ValueError("order_id")
        if not isinstance(data.get("data", {}), dict):
            raise ValueError("data")
        at = datetime.fromisoformat(occurred) if occurred is not None else None
        if at is not None and at.tzinfo is None:
            raise ValueError("occurred_at")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise WebhookRejected(reason=Rejection.MALFORMED_EVENT) from None
    return ParsedEvent(event_id=event_id, type=kind, upstream_order_id=order_id, occurred_at=at)


@routes.post("/webhooks/g2a")
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
        event = _parse(body)
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
