"""Offer routes."""

from __future__ import annotations

from aiohttp import web

from autokey.domain.model import errors as e
from autokey.domain.model.ids import OfferId, PoolId
from autokey.domain.model.offers import OfferDraft, OfferStatus
from autokey.entrypoints.web.context import (
    container,
    json_response,
    page_body,
    page_request,
    path_id,
    principal,
    read_json,
)
from autokey.entrypoints.web.operations import CHANGE, JSON_BODY, Operation
from autokey.entrypoints.web.schemas import OfferDraftIn, OfferOut, OfferStatusIn, PublishIn

routes = web.RouteTableDef()


@routes.post("/offers/draft")
@Operation(
    summary="Create a draft offer, or save an existing draft (with its id)",
    tag="offers",
    status=201,
    also=(200,),
    response=OfferOut,
    request=OfferDraftIn,
    raises=(*JSON_BODY, *CHANGE, e.DuplicateResource),
)
async def save_draft(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_json(request, OfferDraftIn)
    draft = OfferDraft(
        id=OfferId(body.id) if body.id else None,
        title=body.title,
        price=body.price.to_domain(),
        delivery_type=body.delivery_type,
        key_pool_id=PoolId(body.key_pool_id) if body.key_pool_id else None,
        g2a_product_id=body.g2a_product_id,
        max_price=body.max_price.to_domain("maxPrice") if body.max_price else None,
        low_stock_threshold=body.low_stock_threshold,
    )
    view = await container(request).offers().save_draft(who, draft)
    return json_response(request, OfferOut.of(view), status=200 if body.id else 201)


@routes.post("/offers/publish")
@Operation(
    summary="Publish an offer (status active)",
    tag="offers",
    response=OfferOut,
    request=PublishIn,
    raises=(*JSON_BODY, *CHANGE),
)
async def publish(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_json(request, PublishIn)
    view = (
        await container(request)
        .offers()
        .set_status(who, OfferId(body.offer_id), OfferStatus.ACTIVE)
    )
    return json_response(request, OfferOut.of(view))


@routes.patch("/offers/{offer_id}/status")
@Operation(
    summary="Set an offer's status",
    tag="offers",
    response=OfferOut,
    request=OfferStatusIn,
    raises=(*JSON_BODY, *CHANGE),
)
async def set_status(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_json(request, OfferStatusIn)
    offer_id = OfferId(path_id(request, "offer_id", "offer"))
    view = await container(request).offers().set_status(who, offer_id, body.status)
    return json_response(request, OfferOut.of(view))


@routes.get("/seller/offers")
@Operation(
    summary="The seller's offers with live availability",
    tag="offers",
    response=OfferOut,
    paged=True,
)
async def seller_offers(request: web.Request) -> web.Response:
    who = await principal(request)
    page = await container(request).offers().list_for_seller(who, page_request(request))
    return json_response(request, page_body(request, page, [OfferOut.of(v) for v in page.items]))


@routes.get("/offers/{offer_id}")
@Operation(
    summary="One offer with live availability",
    tag="offers",
    response=OfferOut,
    raises=(e.NotFound,),
)
async def get_offer(request: web.Request) -> web.Response:
    who = await principal(request)
    offer_id = OfferId(path_id(request, "offer_id", "offer"))
    return json_response(request, OfferOut.of(await container(request).offers().get(who, offer_id)))
