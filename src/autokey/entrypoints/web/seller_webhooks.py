"""Seller webhook routes: register endpoints, read their deliveries, replay one."""

from __future__ import annotations

from aiohttp import web

from autokey.domain.model import errors as e
from autokey.domain.model.errors import InvalidInput
from autokey.domain.model.ids import DeliveryId, EndpointId
from autokey.domain.model.outbound import OutboundEventType
from autokey.domain.model.pages import Page
from autokey.entrypoints.web.context import (
    container,
    json_response,
    page_body,
    page_request,
    path_id,
    principal,
    read_json,
)
from autokey.entrypoints.web.operations import JSON_BODY, Operation, PageOf
from autokey.entrypoints.web.schemas import (
    DeliveryOut,
    RegisteredWebhookOut,
    RegisterWebhookIn,
    WebhookEndpointOut,
)

routes = web.RouteTableDef()


def _event_types(raw: list[str]) -> set[OutboundEventType]:
    try:
        return {OutboundEventType(value) for value in raw}
    except ValueError:
        raise InvalidInput.of("eventTypes", "unknown_event_type") from None


def _endpoint_id(request: web.Request) -> EndpointId:
    return EndpointId(path_id(request, "endpoint_id", "webhook_endpoint"))


@routes.post("/seller/webhooks")
@Operation(
    summary="Register a webhook endpoint; the signing secret is in this response only",
    tag="seller webhooks",
    status=201,
    response=RegisteredWebhookOut,
    request=RegisterWebhookIn,
    raises=(*JSON_BODY, e.Forbidden),
)
async def register(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_json(request, RegisterWebhookIn)
    endpoint, secret = (
        await container(request)
        .seller_webhooks()
        .register(who, body.url, _event_types(body.event_types))
    )
    out = RegisteredWebhookOut(endpoint=WebhookEndpointOut.of(endpoint), secret=secret)
    response = json_response(request, out, status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/seller/webhooks")
@Operation(
    summary="The seller's webhook endpoints (never their secrets)",
    tag="seller webhooks",
    response=PageOf(WebhookEndpointOut),
    raises=(e.Forbidden,),
)
async def endpoints(request: web.Request) -> web.Response:
    who = await principal(request)
    found = await container(request).seller_webhooks().endpoints(who)
    page = Page(items=list(found), next_after=None)  # at most MAX_ENDPOINTS_PER_SELLER
    return json_response(
        request, page_body(request, page, [WebhookEndpointOut.of(e) for e in found])
    )


@routes.get("/seller/webhooks/{endpoint_id}/deliveries")
@Operation(
    summary="An endpoint's deliveries and their attempts, newest first",
    tag="seller webhooks",
    response=DeliveryOut,
    paged=True,
    raises=(e.NotFound, e.Forbidden),
)
async def deliveries(request: web.Request) -> web.Response:
    who = await principal(request)
    page = (
        await container(request)
        .seller_webhooks()
        .deliveries(who, _endpoint_id(request), page_request(request))
    )
    return json_response(request, page_body(request, page, [DeliveryOut.of(d) for d in page.items]))


@routes.post("/seller/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay")
@Operation(
    summary="Send a delivery again (re-enables a disabled endpoint)",
    tag="seller webhooks",
    response=DeliveryOut,
    raises=(e.NotFound, e.Forbidden),
)
async def replay(request: web.Request) -> web.Response:
    who = await principal(request)
    delivery_id = DeliveryId(path_id(request, "delivery_id", "delivery"))
    delivery = (
        await container(request).seller_webhooks().replay(who, _endpoint_id(request), delivery_id)
    )
    return json_response(request, DeliveryOut.of(delivery))
