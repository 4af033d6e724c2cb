"""What a seller sees of selling on G2A: the link of an offer to its G2A offer (with the last
synced stock), the sales (reservations), keys G2A returned, and G2A's notifications."""

from __future__ import annotations

from aiohttp import web

from autokey.domain.model import errors as e
from autokey.domain.model.ids import OfferId
from autokey.domain.services.merchant import MerchantService
from autokey.entrypoints.web.context import (
    container,
    json_response,
    page_body,
    page_request,
    path_id,
    principal,
    read_json,
)
from autokey.entrypoints.web.operations import Operation
from autokey.entrypoints.web.schemas import (
    G2AOfferLinkIn,
    G2AOfferLinkOut,
    NotificationOut,
    ReservationOut,
    ReturnedKeyOut,
)

routes = web.RouteTableDef()
TAG = "selling on G2A"


def _merchant(request: web.Request) -> MerchantService:
    service: MerchantService = container(request).merchant()
    return service


@routes.put("/offers/{offer_id}/g2a-offer")
@Operation(
    summary="List an AUTO_KEY offer on G2A as a G2A offer id (its stock is kept in sync)",
    tag=TAG,
    response=G2AOfferLinkOut,
    request=G2AOfferLinkIn,
    raises=(e.InvalidInput, e.NotFound, e.DuplicateResource),
)
async def link_offer(request: web.Request) -> web.Response:
    who = await principal(request)
    offer_id = OfferId(path_id(request, "offer_id", "offer"))
    body = await read_json(request, G2AOfferLinkIn)
    link = await _merchant(request).link_offer(who, offer_id, body.g2a_offer_id)
    return json_response(request, G2AOfferLinkOut.of(link))


@routes.get("/offers/{offer_id}/g2a-offer")
@Operation(
    summary="The offer's G2A link: last stock G2A accepted and the last sync error",
    tag=TAG,
    response=G2AOfferLinkOut,
    raises=(e.NotFound,),
)
async def offer_link(request: web.Request) -> web.Response:
    who = await principal(request)
    offer_id = OfferId(path_id(request, "offer_id", "offer"))
    link = await _merchant(request).offer_link(who, offer_id)
    return json_response(request, G2AOfferLinkOut.of(link))


@routes.get("/seller/g2a/reservations")
@Operation(
    summary="The seller's sales on G2A: reservations G2A made, their state and order",
    tag=TAG,
    response=ReservationOut,
    paged=True,
)
async def reservations(request: web.Request) -> web.Response:
    who = await principal(request)
    page = await _merchant(request).reservations(who, page_request(request))
    return json_response(
        request, page_body(request, page, [ReservationOut.of(r) for r in page.items])
    )


@routes.get("/seller/g2a/returned-keys")
@Operation(
    summary="Keys G2A returned; they stay delivered and are never resold automatically",
    tag=TAG,
    response=ReturnedKeyOut,
    paged=True,
)
async def returned_keys(request: web.Request) -> web.Response:
    who = await principal(request)
    page = await _merchant(request).returned_keys(who, page_request(request))
    return json_response(
        request, page_body(request, page, [ReturnedKeyOut.of(r) for r in page.items])
    )


@routes.get("/seller/g2a/notifications")
@Operation(
    summary="Notifications G2A posted to the merchant API",
    tag=TAG,
    response=NotificationOut,
    paged=True,
)
async def notifications(request: web.Request) -> web.Response:
    who = await principal(request)
    page = await _merchant(request).notifications(who, page_request(request))
    return json_response(
        request, page_body(request, page, [NotificationOut.of(n) for n in page.items])
    )
