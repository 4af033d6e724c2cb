"""Order routes. Writes honour an optional Idempotency-Key header."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from autokey.domain.model import errors as e
from autokey.domain.model.auth import Principal
from autokey.domain.model.errors import KeyMaterialUnreadable
from autokey.domain.model.idempotency import StoredResponse
from autokey.domain.model.ids import OfferId, OrderId
from autokey.domain.model.merchant import Channel
from autokey.domain.model.orders import OrderStatus, SalesFilter
from autokey.domain.services.orders import OrderView
from autokey.domain.services.transactions import transact
from autokey.entrypoints.web.bodies import body_bytes
from autokey.entrypoints.web.context import (
    container,
    converter,
    enum_param,
    json_body,
    json_response,
    page_body,
    page_request,
    path_id,
    principal,
    read_json,
    status_filter,
    time_param,
    uuid_param,
)
from autokey.entrypoints.web.operations import (
    CHANGE,
    IDEMPOTENT,
    JSON_BODY,
    Operation,
    param,
    status_param,
)
from autokey.entrypoints.web.schemas import CreateOrderIn, OrderOut, SaleOut
from autokey.ports.store import UnitOfWork

routes = web.RouteTableDef()
Step = Callable[[UnitOfWork], Awaitable[OrderView]]
ORDER_STATUS = status_param(OrderStatus, "orders")
CHANNEL = "Only orders from autokey's buyer API (`api`) or from G2A (`g2a`)."


async def _respond(
    request: web.Request,
    who: Principal,
    step: Step,
    status: int,
    batched: Callable[[], Awaitable[OrderView]] | None = None,
) -> web.Response:
    """Run `step` in a transaction; with an Idempotency-Key, exactly once per key, in the
    transaction that stores the key's record. Without one, `batched` runs the call when given
    (group commit, ADR 0032). An order whose key is bought upstream is sourced once the
    transaction is over (and nothing is stored for the key: a repeat sources again)."""

    ran: list[OrderView] = []

    def stored(view: OrderView) -> StoredResponse | None:
        ran[:] = [view]
        if view.sourcing_required:
            return None
        body = json_body(converter(request).unstructure(OrderOut.of_view(view)))
        return StoredResponse(status=status, body=body)

    async def effect(tx: UnitOfWork) -> StoredResponse | None:
        return stored(await step(tx))

    key = request.headers.get("Idempotency-Key")
    headers = {}
    if key is None and batched is not None:
        response = stored(await batched())
    elif key is None:
        response = await transact(container(request).store(), effect)
    else:
        fingerprint = hashlib.sha256(
            b"\n".join([request.method.encode(), request.path.encode(), await body_bytes(request)])
        ).digest()
        outcome = (
            await container(request)
            .idempotency()
            .run(f"{who.role}:{who.subject}", key, fingerprint, effect)
        )
        response = outcome.response
        headers["Idempotent-Replayed"] = "true" if outcome.replayed else "false"
    if response is None:
        return await _source(request, who, ran[0].order.id)
    for view in (v for v in ran if v.moved):  # committed by now
        transition = "created" if view.order.status is OrderStatus.PENDING else view.order.status
        container(request).domain_metrics().order_transition(transition.lower())
    return web.Response(
        status=response.status,
        body=response.body,
        content_type="application/json",
        headers=headers,
    )


async def _source(request: web.Request, who: Principal, order_id: OrderId) -> web.Response:
    """Advance the upstream purchase (its own transactions and external calls), then answer
    from the order's state: 202 while it is FULFILLING."""
    await container(request).sourcing().advance(order_id)
    view = await container(request).orders().get(who, order_id)
    status = 202 if view.order.status is OrderStatus.FULFILLING else 200
    return json_response(request, OrderOut.of_view(view), status=status)


def _order_id(request: web.Request) -> OrderId:
    return OrderId(path_id(request, "order_id", "order"))


@routes.post("/orders")
@Operation(
    summary="Order an offer (buyer): reserves keys until `reservedUntil`",
    tag="orders",
    status=201,
    response=OrderOut,
    request=CreateOrderIn,
    idempotency_key=True,
    raises=(
        *JSON_BODY,
        e.NotFound,
        e.OfferNotAvailable,
        e.OutOfStock,
        e.StockBusy,
        *IDEMPOTENT,
        e.Conflict,
    ),
)
async def create_order(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await read_json(request, CreateOrderIn)
    orders = container(request).orders()
    offer_id = OfferId(body.offer_id)
    return await _respond(
        request,
        who,
        lambda tx: orders.create_in(tx, who, offer_id, body.quantity),
        201,
        lambda: orders.create(who, offer_id, body.quantity),
    )


@routes.post("/orders/{order_id}/pay")
@Operation(
    summary="Pay a pending order through the configured payment provider",
    tag="orders",
    response=OrderOut,
    idempotency_key=True,
    raises=(e.ReservationExpired, *CHANGE, e.PaymentsNotConfigured, *IDEMPOTENT),
)
async def pay(request: web.Request) -> web.Response:
    who, order_id = await principal(request), _order_id(request)
    orders = container(request).orders()
    return await _respond(
        request,
        who,
        lambda tx: orders.pay_in(tx, who, order_id),
        200,
        lambda: orders.pay(who, order_id),
    )


@routes.post("/orders/{order_id}/fulfill")
@Operation(
    summary="Deliver the keys of a paid order (again: the same keys)",
    tag="orders",
    response=OrderOut,
    idempotency_key=True,
    raises=(
        e.OrderNotPaid,
        *CHANGE,
        e.KeyNotAvailable,
        *IDEMPOTENT,
        e.UpstreamUnavailable,
        e.UpstreamError,
        e.OrderKeysUnreadable,
        e.KeyringMismatch,
        e.KeyMaterialUnreadable,
    ),
)
async def fulfill(request: web.Request) -> web.Response:
    """AUTO_KEY orders complete in one transaction (200). G2A orders are bought upstream:
    202 while the order is FULFILLING; 200 once delivered, or CANCELED if G2A refused.
    Reserved keys that fail to decrypt are set aside and replaced from the pool (200), or the
    order is canceled: 409 order_keys_unreadable, now and on every retry."""
    who, order_id = await principal(request), _order_id(request)
    orders = container(request).orders()
    try:
        return await _respond(
            request,
            who,
            lambda tx: orders.fulfill_in(tx, who, order_id),
            200,
            lambda: orders.fulfill(who, order_id),
        )
    except KeyMaterialUnreadable:
        # Rolled back; the buyer owns the order (fulfill_in checked). Deal with the keys in a
        # transaction of its own, then answer from the order's new state.
        order = await container(request).keyring().set_aside_unreadable(order_id)
        if order is not None and order.status is OrderStatus.CANCELED:
            container(request).domain_metrics().order_transition("canceled")
        return await _respond(request, who, lambda tx: orders.fulfill_in(tx, who, order_id), 200)


@routes.post("/orders/{order_id}/cancel")
@Operation(
    summary="Cancel a pending order and release its keys",
    tag="orders",
    response=OrderOut,
    idempotency_key=True,
    raises=(*CHANGE, *IDEMPOTENT),
)
async def cancel(request: web.Request) -> web.Response:
    who, order_id = await principal(request), _order_id(request)
    orders = container(request).orders()
    return await _respond(request, who, lambda tx: orders.cancel_in(tx, who, order_id), 200)


@routes.get("/orders/{order_id}")
@Operation(
    summary="One order; a fulfilled order includes its keys",
    tag="orders",
    response=OrderOut,
    raises=(e.NotFound, e.KeyMaterialUnreadable),
)
async def get_order(request: web.Request) -> web.Response:
    who = await principal(request)
    view = await container(request).orders().get(who, _order_id(request))
    return json_response(request, OrderOut.of_view(view))


@routes.get("/seller/orders")
@Operation(
    summary="The seller's sales across offers, newest first (key ids, never plaintext)",
    tag="orders",
    response=SaleOut,
    paged=True,
    query=(
        ORDER_STATUS,
        param("offerId", "Only orders of this offer.", format="uuid"),
        param("channel", CHANNEL, enum=[c.value for c in Channel]),
        param("since", "Only orders created at or after this time.", format="date-time"),
        param("until", "Only orders created before this time.", format="date-time"),
    ),
    raises=(e.Forbidden,),
)
async def seller_orders(request: web.Request) -> web.Response:
    """The seller's sales across offers, newest first, filtered by the query."""
    who = await principal(request)
    which = SalesFilter(
        status=status_filter(request, OrderStatus),
        offer_id=OfferId(offer) if (offer := uuid_param(request, "offerId")) else None,
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        channel=enum_param(request, "channel", Channel),
    )
    page = await container(request).orders().list_sales(who, which, page_request(request))
    return json_response(request, page_body(request, page, [SaleOut.of(s) for s in page.items]))


@routes.get("/orders")
@Operation(
    summary="The buyer's orders, newest first",
    tag="orders",
    response=OrderOut,
    paged=True,
    query=(ORDER_STATUS,),
)
async def list_orders(request: web.Request) -> web.Response:
    who = await principal(request)
    status = status_filter(request, OrderStatus)
    page = await container(request).orders().list_for_buyer(who, status, page_request(request))
    return json_response(request, page_body(request, page, [OrderOut.of(o) for o in page.items]))
