"""Request ids, per-request logging context, the access log line, HTTP metrics and /metrics
(served by the metrics app only, app.make_metrics_app).

`observability_middleware` must be the OUTERMOST middleware: it sees the final response of
every request (problem responses, 404 and 405 included) and so can stamp the ids on all of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autokey.entrypoints.metrics import UNMATCHED_ROUTE
from autokey.entrypoints.web.context import container

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"
MAX_ID_LENGTH = 128

log = structlog.get_logger("autokey.http")
metrics_routes = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def incoming_id(value: str | None) -> str:
    """The caller's id when it is 1-128 printable ASCII characters; 128 random bits in hex
    otherwise (an id goes into every log line and back into a header, so nothing else is
    trusted). `uuid4().hex` gives the same text at five times the cost."""
    if value and len(value) <= MAX_ID_LENGTH and value.isascii() and value.isprintable():
        return value
    return os.urandom(16).hex()


def route_template(request: web.Request) -> str:
    """`/orders/{order_id}`, never the raw path: label values and log fields stay bounded."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


@web.middleware
async def observability_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = incoming_id(request.headers.get(REQUEST_ID_HEADER))
    correlation_id = incoming_id(request.headers.get(CORRELATION_ID_HEADER))
    ids = {REQUEST_ID_HEADER: request_id, CORRELATION_ID_HEADER: correlation_id}
    route = route_template(request)
    tokens = structlog.contextvars.bind_contextvars(
        request_id=request_id, correlation_id=correlation_id, method=request.method, route=route
    )
    started = time.perf_counter()
    status = 500
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and anything raised past the problem layer
            status = exc.status
            exc.headers.update(ids)
            raise
        status = response.status
        if not response.prepared:
            response.headers.update(ids)
        return response
    finally:
        seconds = time.perf_counter() - started
        container(request).http_metrics().observe(request.method, route, status, seconds)
        log.info("http.request", status=status, latency_ms=round(seconds * 1000, 2))
        structlog.contextvars.reset_contextvars(**tokens)


@metrics_routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the container's registry (never the global default one),
    summed over every worker of `serve --workers N`."""
    wired = container(request)
    await wired.key_stock().refresh()
    body = generate_latest(wired.metrics_exposition())
    response = web.Response(body=body, headers={"Cache-Control": "no-store"})
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
