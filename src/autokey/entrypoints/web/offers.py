"""Offer routes."""

from __future__ import annotations

from aiohttp import web

from autokey.domain.model.errors import InvalidInput
from autokey.domain.model.ids import OfferId, PoolId
from autokey.domain.model.offers import DeliveryType, OfferDraft, OfferStatus
from autokey.entrypoints.web.context import (
    container,
    json_response,
    page_body,
    page_request,
    path_id,
    principal,
    read_json,
)
from autokey.entrypoints.web.schemas import OfferDraftIn, OfferOut, OfferStatusIn, PublishIn

routes = web.RouteTableDef()


def _enum(kind: type[DeliveryType] | type[OfferStatus], raw: str, field: str) -> str:
    try:
        return kind(raw).value
    except ValueError:
        raise InvalidInput.of(field, "unknown_value") from None


@routes.post("/offers/draft")
async def save_draft(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_json(request, OfferDraftIn)
    draft = OfferDraft(
        id=OfferId(body.id) if body.id else None,
        title=body.title,
        price=body.price.to_domain(),
        delivery_type=DeliveryType(_enum(DeliveryType, body.delivery_type, "deliveryType")),
        key_pool_id=PoolId(body.key_pool_id) if body.key_pool_id else None,
        g2a_product_id=body.g2a_product_id,
        max_price=body.max_price.to_domain("maxPrice") if body.max_price else None,
        low_stock_threshold=body.low_stock_threshold,
    )
    view = await container(request).offers().save_draft(who, draft)
    return json_response(request, OfferOut.of(view), status=200 if body.id else 201)


@routes.post("/offers/publish")
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
async def set_status(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_json(request, OfferStatusIn)
    status = OfferStatus(_enum(OfferStatus, body.status, "status"))
    offer_id = OfferId(path_id(request, "offer_id", "offer"))
    view = await container(request).offers().set_status(who, offer_id, status)
    return json_response(request, OfferOut.of(view))


@routes.get("/seller/offers")
async def seller_offers(request: web.Request) -> web.Response:
    who = await principal(request)
    page = await container(request).offers().list_for_seller(who, page_request(request))
    return json_response(request, page_body(request, page, [OfferOut.of(v) for v in page.items]))


@routes.get("/offers/{offer_id}")
async def get_offer(request: web.Request) -> web.Response:
    who = await principal(request)
    offer_id = OfferId(path_id(request, "offer_id", "offer"))
    return json_response(request, OfferOut.of(await container(request).offers().get(who, offer_id)))
