"""G2A's merchant stock contract, served under /g2a/merchant (docs: g2a-contract.md, "Merchant
stock contract"). A sub-application: its own snake_case converter, its own bearer tokens
(a buyer or seller token opens nothing here, a merchant token nothing elsewhere) and the
contract's statuses from the merchant rows of the problem table."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

import attrs
from aiohttp import web

from autokey.domain.model.errors import InvalidInput, Unauthenticated
from autokey.domain.model.ids import KeyId, SubjectId
from autokey.domain.model.merchant import MAX_RESERVATION_ID, check_product_id
from autokey.domain.services.merchant import (
    MerchantService,
    NotificationIn,
    ReservationView,
    ReserveItem,
    Stock,
)
from autokey.entrypoints.container import Container
from autokey.entrypoints.web.bodies import HANDLER_ARGS, body_bytes
from autokey.entrypoints.web.context import CONTAINER, CONVERTER, read_json
from autokey.entrypoints.web.problems import merchant_problem_middleware
from autokey.entrypoints.web.schemas import make_merchant_converter

PREFIX = "/g2a/merchant"
routes = web.RouteTableDef()


@attrs.frozen(kw_only=True)
class ReserveItemIn:
    product_id: int
    quantity: int
    additional_data: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class CreateOrderIn:
    reservation_id: str
    g2a_order_id: int


@attrs.frozen(kw_only=True)
class NotificationDataIn:
    message: str = ""
    auction_id: int | None = None
    offer_id: str | None = None


@attrs.frozen(kw_only=True)
class NotificationBodyIn:
    notification_type: str
    date: str
    data: NotificationDataIn = NotificationDataIn()


def make_merchant_app(container: Container) -> web.Application:
    app = web.Application(middlewares=[merchant_problem_middleware], handler_args=HANDLER_ARGS)
    app[CONTAINER] = container
    app[CONVERTER] = make_merchant_converter()
    app.add_routes(routes)
    return app


def _merchant(request: web.Request) -> MerchantService:
    service: MerchantService = request.app[CONTAINER].merchant()
    return service


async def _seller(request: web.Request) -> SubjectId:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(reason="missing_bearer_token")
    return await _merchant(request).authenticate(secret.strip())


def _count(request: web.Request, transition: str, view: ReservationView) -> None:
    """After the commit: one order per line of the reservation moved."""
    metrics = request.app[CONTAINER].domain_metrics()
    metrics.g2a_transition(transition, len(view.reservation.lines))


def _stock(stock: Stock, *, with_keys: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "product_id": int(stock.product_id),
        "inventory_size": stock.inventory_size,
    }
    if with_keys:
        out["inventory"] = [
            {"id": str(k.id), "value": k.plaintext, "kind": "text"} for k in stock.keys
        ]
    return out


def _reservation_body(view: ReservationView) -> dict[str, Any]:
    return {
        "reservation_id": view.reservation.id,
        "stock": [_stock(s, with_keys=False) for s in view.stock],
    }


def _reservation_id(request: web.Request) -> str:
    raw = request.match_info["reservation_id"]
    if not 1 <= len(raw) <= MAX_RESERVATION_ID:
        raise InvalidInput.of("reservation_id", "invalid_length")
    return raw


@routes.route("GET", "/oauth/token")
@routes.route("POST", "/oauth/token")
async def token(request: web.Request) -> web.Response:
    """Client credentials in the query string or a form body (G2A documents GET + query)."""
    fields = dict(request.query)
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        form = (await body_bytes(request)).decode("utf-8", errors="replace")
        fields.update(parse_qsl(form, keep_blank_values=True))
    if fields.get("grant_type") != "client_credentials":
        raise InvalidInput.of("grant_type", "unsupported_grant_type")
    client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
    if not client_id or not secret:
        raise Unauthenticated(reason="missing_client_credentials")
    issued = await _merchant(request).issue_token(client_id, secret)
    return web.json_response(
        {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
        }
    )


@routes.post("/reservation")
async def reserve(request: web.Request) -> web.Response:
    seller = await _seller(request)
    body = await read_json(request, list[ReserveItemIn])
    items = []
    for i, item in enumerate(body):
        product_id = check_product_id(str(item.product_id), f"[{i}].product_id")
        items.append(ReserveItem(product_id=product_id, quantity=item.quantity))
    view = await _merchant(request).reserve(seller, items)
    _count(request, "created", view)
    return web.json_response(_reservation_body(view))


@routes.put("/reservation/{reservation_id}")
async def renew(request: web.Request) -> web.Response:
    seller = await _seller(request)
    view = await _merchant(request).renew(seller, _reservation_id(request))
    return web.json_response(_reservation_body(view))


@routes.delete("/reservation/{reservation_id}")
async def release(request: web.Request) -> web.Response:
    seller = await _seller(request)
    if released := await _merchant(request).release(seller, _reservation_id(request)):
        _count(request, "canceled", released)
    return web.Response(status=204)


@routes.post("/order")
async def create_order(request: web.Request) -> web.Response:
    seller = await _seller(request)
    body = await read_json(request, CreateOrderIn)
    if not 1 <= len(body.reservation_id) <= MAX_RESERVATION_ID:
        raise InvalidInput.of("reservation_id", "invalid_length")
    view = await _merchant(request).order(seller, body.reservation_id, body.g2a_order_id)
    _count(request, "fulfilled", view)
    return web.json_response(
        {"order_id": view.reservation.id, "stock": [_stock(s, with_keys=True) for s in view.stock]}
    )


@routes.get("/order/{order_id}/inventory")
async def inventory(request: web.Request) -> web.Response:
    seller = await _seller(request)
    view = await _merchant(request).inventory(seller, request.match_info["order_id"])
    return web.json_response([_stock(s, with_keys=True) for s in view.stock])


@routes.delete("/order/{order_id}/inventory")
async def return_keys(request: web.Request) -> web.Response:
    seller = await _seller(request)
    raw = request.query.getall("id[]", []) or request.query.getall("id", [])
    try:
        key_ids = [KeyId(UUID(value)) for value in raw]
    except ValueError:
        raise InvalidInput.of("id[]", "invalid_id") from None
    await _merchant(request).return_keys(seller, request.match_info["order_id"], key_ids)
    return web.Response(status=204)


@routes.post("/notifications")
async def notifications(request: web.Request) -> web.Response:
    seller = await _seller(request)
    body = await read_json(request, list[NotificationBodyIn])
    await _merchant(request).notify(
        seller,
        [
            NotificationIn(
                type=n.notification_type,
                date=n.date,
                message=n.data.message,
                auction_id=n.data.auction_id,
                g2a_offer_id=n.data.offer_id,
            )
            for n in body
        ],
    )
    return web.Response(status=204)


@routes.get("/healthcheck")
async def healthcheck(request: web.Request) -> web.Response:
    await _seller(request)
    await _merchant(request).ping()
    return web.Response(status=204)
