"""A local G2A simulator serving the whole contract on loopback (Export API under `/v1`,
Import API at the host root), with real checks of every auth form, a deterministic
catalogue, once-only keys, signed webhooks and fault injection.

Faults are set by `SimulatorConfig.faults` or at runtime by `POST /__admin/faults`
(JSON with any `FaultConfig` field, plus `token_lifetime_s`); `GET /__admin/state` reports
counters (token fetches, requests); `POST /__admin/revoke-tokens` forgets issued tokens;
`POST /__admin/merchant/journey` plays a G2A customer against a merchant server on loopback
(the merchant stock contract: token, reserve, order, inventory)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import attrs
import structlog
from aiohttp import web

from autokey.adapters.g2a.auth import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_EMAIL,
    export_authorization,
    hash_signature,
)
from autokey.adapters.g2a.customer import G2ACustomer
from autokey.adapters.g2a.urls import is_loopback_host
from autokey.adapters.g2a.webhook_signing import sign_webhook

log = structlog.get_logger("autokey.adapters.g2a.simulator")

FIRST_ORDER_ID = 1530978476
ORDER_HOLD_S = 30 * 60
ADMIN_PREFIX = "/__admin"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.frozen(kw_only=True)
class FaultConfig:
    """Faults applied to requests whose path starts with `path_prefix` ("" = all but admin).
    Counts are consumed one per matching request."""

    rate_limit_count: int = 0
    retry_after_s: float | None = 1.0
    server_error_count: int = 0
    server_error_status: int = 503
    latency_s: float = 0.0
    malformed_count: int = 0
    path_prefix: str = ""


@attrs.frozen(kw_only=True)
class SimulatorConfig:
    """Credentials accepted besides G2A's published sandbox pair, and behaviour knobs."""

    client_id: str = SANDBOX_CLIENT_ID
    client_secret: str = attrs.field(default=SANDBOX_CLIENT_SECRET, repr=False)
    email: str = attrs.field(default=SANDBOX_EMAIL, repr=False)
    token_lifetime_s: int = 300
    page_size: int = 20
    catalogue_size: int = 40
    key_ready_delay_s: float = 0.0
    callback_url: str | None = None
    hash_timestamp_tolerance_s: int = 300
    offer_ids: tuple[str, ...] = ("offer-1",)
    faults: FaultConfig = FaultConfig()
    clock: Callable[[], float] = attrs.field(default=time.time, eq=False)


@attrs.define(kw_only=True)
class SimOrder:
    order_id: str
    product_id: str
    price: Decimal
    currency: str
    created_at: float
    paid_at: float | None = None
    transaction_id: str | None = None
    key_downloaded: bool = False


@attrs.define(kw_only=True)
class SimulatorState:
    config: SimulatorConfig
    faults: FaultConfig
    token_lifetime_s: int
    products: dict[str, dict[str, Any]]
    orders: dict[str, SimOrder] = attrs.field(factory=dict)
    next_order_id: int = FIRST_ORDER_ID
    tokens: dict[str, float] = attrs.field(factory=dict, repr=False)
    token_fetches: int = 0
    requests: int = 0
    offers: dict[str, int] = attrs.field(factory=dict)
    offer_updates: int = 0
    jobs: dict[str, str] = attrs.field(factory=dict)
    webhooks_sent: int = 0
    tasks: set[asyncio.Task[None]] = attrs.field(factory=set)
    http: aiohttp.ClientSession | None = None


SIMULATOR_STATE = web.AppKey("g2a_simulator_state", SimulatorState)


def catalogue(size: int) -> dict[str, dict[str, Any]]:
    """G2A's official fixtures, then `size` generated products (deterministic)."""
    products: list[dict[str, Any]] = [
        _product(
            "10000068865001", "Battlefield 1 (Origin) GLOBAL", Decimal("25.25"), 101, "Origin"
        ),
        _product(
            "10000149026001", "Simulated Indie Game (Steam) GLOBAL", Decimal("1.5"), 20, "Steam"
        ),
    ]
    platforms = ("Steam", "Origin", "Uplay", "GOG.com", "Epic Games")
    for i in range(size):
        price = Decimal(100 + (i * 3719) % 6000) / 100
        products.append(
            _product(
                str(10000200000001 + i * 1000),
                f"Simulated Game {i + 1:03d}",
                price,
                (i * 13) % 50,
                platforms[i % len(platforms)],
            )
        )
    return {p["id"]: p for p in products}


def _product(pid: str, name: str, price: Decimal, qty: int, platform: str) -> dict[str, Any]:
    return {
        "id": pid,
        "name": name,
        "type": "egoods",
        "slug": "/" + name.lower().replace(" ", "-").replace("(", "").replace(")", ""),
        "qty": qty,
        "minPrice": price,
        "retail_min_price": price + Decimal("1.99"),
        "retailMinBasePrice": price + Decimal("1.49"),
        "availableToBuy": qty > 0,
        "region": "GLOBAL",
        "platform": platform,
        "developer": "Simulated Developer",
        "publisher": "Simulated Publisher",
        "release_date": "2016-10-21",
        "updated_at": "2024-01-01 00:00:00",
        "thumbnail": f"https://images.g2a.example/{pid}.jpg",
        "categories": [{"id": 189, "name": "Games"}],
    }


def _dumps(data: Any) -> str:
    return json.dumps(data, default=lambda v: float(v) if isinstance(v, Decimal) else str(v))


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=_dumps(data), status=status, content_type="application/json")


def _error(status: int, code: str, message: str) -> web.Response:
    return _json({"status": "ERROR", "code": code, "message": message}, status)


def _state(request: web.Request) -> SimulatorState:
    return request.app[SIMULATOR_STATE]


def _accepted_pairs(cfg: SimulatorConfig) -> dict[str, str]:
    """client id -> client secret."""
    return {SANDBOX_CLIENT_ID: SANDBOX_CLIENT_SECRET, cfg.client_id: cfg.client_secret}


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# -- middlewares ---------------------------------------------------------------------------


@web.middleware
async def _faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = _state(request)
    if request.path.startswith(ADMIN_PREFIX):
        return await handler(request)
    state.requests += 1
    f = state.faults
    if not request.path.startswith(f.path_prefix):
        return await handler(request)
    if f.latency_s > 0:
        await asyncio.sleep(f.latency_s)
    if f.rate_limit_count > 0:
        state.faults = attrs.evolve(f, rate_limit_count=f.rate_limit_count - 1)
        response = _error(429, "BR03", "Too many requests")
        if f.retry_after_s is not None:
            response.headers["Retry-After"] = f"{f.retry_after_s:g}"
        return response
    if f.server_error_count > 0:
        state.faults = attrs.evolve(f, server_error_count=f.server_error_count - 1)
        return _error(f.server_error_status, "ORD122", "Bad gateway")
    if f.malformed_count > 0:
        state.faults = attrs.evolve(f, malformed_count=f.malformed_count - 1)
        return web.Response(text='{"total": 1, "docs": [{"id": ', content_type="application/json")
    return await handler(request)


def _export_auth_failure(request: web.Request) -> web.Response | None:
    header = request.headers.get("Authorization", "").strip()
    if not header:
        return _error(400, "AUTH01", "No Authorization header")
    cfg = _state(request).config
    accepted = (
        export_authorization(SANDBOX_CLIENT_ID, SANDBOX_EMAIL, SANDBOX_CLIENT_SECRET),
        export_authorization(cfg.client_id, cfg.email, cfg.client_secret),
    )
    if not any(_eq(header, candidate) for candidate in accepted):
        return _error(401, "AUTH02", "Authorization failed")
    return None


def _bearer_failure(request: web.Request) -> web.Response | None:
    state = _state(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _error(401, "AUTH01", "Bearer token required")
    expires_at = state.tokens.get(token)
    if expires_at is None or state.config.clock() >= expires_at:
        return _error(401, "AUTH02", "Invalid or expired token")
    return None


# -- Export API ----------------------------------------------------------------------------


async def _products(request: web.Request) -> web.Response:
    if (failure := _export_auth_failure(request)) is not None:
        return failure
    state = _state(request)
    q = request.query
    try:
        page = int(q.get("page", "1"))
        min_qty = int(q["minQty"]) if "minQty" in q else None
        price_from = Decimal(q["minPriceFrom"]) if "minPriceFrom" in q else None
        price_to = Decimal(q["minPriceTo"]) if "minPriceTo" in q else None
    except (ValueError, ArithmeticError):
        return _error(400, "BR01", "Invalid query")
    if page < 1:
        return _error(400, "BR01", "Invalid page")
    docs = [
        p
        for p in state.products.values()
        if ("id" not in q or p["id"] == q["id"])
        and (min_qty is None or p["qty"] >= min_qty)
        and (price_from is None or p["minPrice"] >= price_from)
        and (price_to is None or p["minPrice"] <= price_to)
    ]
    size = state.config.page_size
    chunk = docs[(page - 1) * size : page * size]
    return _json({"total": len(docs), "page": page, "docs": chunk})


async def _create_order(request: web.Request) -> web.Response:
    if (failure := _export_auth_failure(request)) is not None:
        return failure
    state = _state(request)
    try:
        body = json.loads(await request.read(), parse_float=Decimal)
        product_id = str(body["product_id"])
        max_price = body.get("max_price")
        max_price = Decimal(str(max_price)) if max_price is not None else None
        currency = str(body.get("currency") or "EUR")
    except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError):
        return _error(400, "BR01", "Invalid JSON")
    product = state.products.get(product_id)
    if product is None:
        return _error(404, "PRD01", "Product not found")
    if product["qty"] <= 0:
        return _error(400, "ORD01", "Product out of stock")
    if max_price is not None and product["minPrice"] > max_price:
        return _error(400, "ORD01", "No offer under max_price")
    order_id = str(state.next_order_id)
    state.next_order_id += 1
    state.orders[order_id] = SimOrder(
        order_id=order_id,
        product_id=product_id,
        price=product["minPrice"],
        currency=currency,
        created_at=state.config.clock(),
    )
    return _json({"order_id": order_id, "price": product["minPrice"], "currency": currency})


def _key_ready(state: SimulatorState, order: SimOrder) -> bool:
    return order.paid_at is not None and (
        state.config.clock() >= order.paid_at + state.config.key_ready_delay_s
    )


async def _pay_order(request: web.Request) -> web.Response:
    if (failure := _export_auth_failure(request)) is not None:
        return failure
    state = _state(request)
    order = state.orders.get(request.match_info["order_id"])
    if order is None:
        return _error(404, "ORD02", "Order not found")
    if order.paid_at is None:
        if state.config.clock() > order.created_at + ORDER_HOLD_S:
            return _error(403, "ORD114", "Payment too late")
        order.paid_at = state.config.clock()
        order.transaction_id = uuid.uuid5(uuid.NAMESPACE_OID, order.order_id).hex
        product = state.products[order.product_id]
        product["qty"] = max(0, product["qty"] - 1)
        product["availableToBuy"] = product["qty"] > 0
        _schedule_webhooks(state, order)
    return _json({"status": True, "transaction_id": order.transaction_id})


async def _order_details(request: web.Request) -> web.Response:
    if (failure := _export_auth_failure(request)) is not None:
        return failure
    state = _state(request)
    order = state.orders.get(request.match_info["order_id"])
    if order is None:
        return _error(404, "ORD02", "Order not found")
    status = "new" if order.paid_at is None else "complete" if _key_ready(state, order) else "paid"
    return _json({"status": status, "price": order.price, "currency": order.currency})


def simulated_key(order_id: str) -> str:
    """The deterministic key the simulator delivers for an order."""
    digest = hashlib.sha256(f"g2a-sim-key:{order_id}".encode()).hexdigest().upper()
    return "-".join(digest[i : i + 5] for i in range(0, 25, 5))


async def _order_key(request: web.Request) -> web.Response:
    if (failure := _export_auth_failure(request)) is not None:
        return failure
    state = _state(request)
    order = state.orders.get(request.match_info["order_id"])
    if order is None:
        return _error(404, "ORD02", "Order not found")
    if not _key_ready(state, order):
        return _error(403, "ORD03", "Payment not ready yet, try later")
    if order.key_downloaded:
        return _error(400, "ORD004", "Key already downloaded")
    order.key_downloaded = True
    return _json({"key": simulated_key(order.order_id)})


# -- tokens --------------------------------------------------------------------------------


def _issue_token(state: SimulatorState) -> web.Response:
    token = secrets.token_urlsafe(24)
    state.tokens[token] = state.config.clock() + state.token_lifetime_s
    state.token_fetches += 1
    return _json(
        {"access_token": token, "token_type": "bearer", "expires_in": state.token_lifetime_s}
    )


async def _oauth_token(request: web.Request) -> web.Response:
    state = _state(request)
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return _error(400, "BR01", "grant_type must be client_credentials")
    client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
    expected = _accepted_pairs(state.config).get(client_id)
    if expected is None or not _eq(secret, expected):
        return _error(401, "AUTH02", "Invalid client credentials")
    return _issue_token(state)


async def _hash_token(request: web.Request) -> web.Response:
    state = _state(request)
    h = request.headers
    names = ("X-API-HASH", "X-API-KEY", "X-G2A-Timestamp", "X-G2A-Hash")
    if any(not h.get(name) for name in names):
        return _error(400, "AUTH01", "Missing authentication headers")
    expected_secret = _accepted_pairs(state.config).get(h["X-API-KEY"])
    if expected_secret is None or not _eq(h["X-API-HASH"], expected_secret):
        return _error(401, "AUTH02", "Authorization failed")
    try:
        timestamp = int(h["X-G2A-Timestamp"])
    except ValueError:
        return _error(401, "AUTH02", "Invalid timestamp")
    if abs(state.config.clock() - timestamp) > state.config.hash_timestamp_tolerance_s:
        return _error(401, "AUTH02", "Timestamp outside tolerance")
    wanted = hash_signature(expected_secret, h["X-API-KEY"], h["X-G2A-Timestamp"])
    if not _eq(h["X-G2A-Hash"].lower(), wanted):
        return _error(401, "AUTH02", "Authorization failed")
    return _issue_token(state)


# -- Import API ----------------------------------------------------------------------------


def _new_job(state: SimulatorState, resource_id: str) -> web.Response:
    job_id = uuid.uuid4().hex
    state.jobs[job_id] = resource_id
    return _json({"data": {"jobId": job_id}}, 202)


async def _list_offers(request: web.Request) -> web.Response:
    if (failure := _bearer_failure(request)) is not None:
        return failure
    offers = _state(request).offers
    data = [
        {"id": oid, "type": "dropshipping", "inventory": {"size": n}} for oid, n in offers.items()
    ]
    return _json({"data": data, "meta": {"totalResults": len(data)}})


def _inventory_size(body: Any) -> int:
    size = body["variant"]["inventory"]["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError("inventory size")
    return size


async def _create_offer(request: web.Request) -> web.Response:
    if (failure := _bearer_failure(request)) is not None:
        return failure
    state = _state(request)
    try:
        size = _inventory_size(json.loads(await request.read()))
    except (ValueError, KeyError, TypeError):
        return _error(400, "BR01", "Invalid offer")
    offer_id = uuid.uuid4().hex
    state.offers[offer_id] = size
    return _new_job(state, offer_id)


async def _update_offer(request: web.Request) -> web.Response:
    if (failure := _bearer_failure(request)) is not None:
        return failure
    state = _state(request)
    offer_id = request.match_info["offer_id"]
    if offer_id not in state.offers:
        return _error(404, "OFR01", "Offer not found")
    try:
        size = _inventory_size(json.loads(await request.read()))
    except (ValueError, KeyError, TypeError):
        return _error(400, "BR01", "Invalid offer")
    state.offers[offer_id] = size
    state.offer_updates += 1
    return _new_job(state, offer_id)


async def _job(request: web.Request) -> web.Response:
    if (failure := _bearer_failure(request)) is not None:
        return failure
    state = _state(request)
    job_id = request.match_info["job_id"]
    resource = state.jobs.get(job_id)
    if resource is None:
        return _error(404, "JOB01", "Job not found")
    element = {
        "resourceId": resource,
        "resourceType": "offer",
        "status": "complete",
        "code": None,
        "message": None,
    }
    return _json({"data": {"jobId": job_id, "status": "complete", "elements": [element]}})


# -- admin ---------------------------------------------------------------------------------


async def _set_faults(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        body = await request.json()
        lifetime = body.pop("token_lifetime_s", None)
        state.faults = attrs.evolve(state.faults, **body)
        if lifetime is not None:
            state.token_lifetime_s = int(lifetime)
    except (ValueError, TypeError, AttributeError):
        return _error(400, "BR01", "Invalid faults")
    return _json({"faults": attrs.asdict(state.faults), "token_lifetime_s": state.token_lifetime_s})


async def _get_state(request: web.Request) -> web.Response:
    state = _state(request)
    return _json(
        {
            "token_fetches": state.token_fetches,
            "requests": state.requests,
            "orders": len(state.orders),
            "webhooks_sent": state.webhooks_sent,
            "offers": state.offers,
            "offer_updates": state.offer_updates,
        }
    )


async def _merchant_journey(request: web.Request) -> web.Response:
    """Play a G2A customer against a merchant server on loopback: token, healthcheck,
    reserve, order, inventory. Body: base_url, client_id, client_secret, product_id,
    quantity (default 1). Answers each step's status; key values are never echoed."""
    try:
        body = await request.json()
        base_url, product_id = str(body["base_url"]), int(body["product_id"])
        quantity = int(body.get("quantity", 1))
        credentials = (str(body["client_id"]), str(body["client_secret"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return _error(400, "BR01", "Invalid journey")
    if not is_loopback_host(urlsplit(base_url).hostname or ""):
        return _error(400, "BR01", "The merchant server must be on loopback")
    steps: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        customer = G2ACustomer(session, base_url, *credentials)
        answer = await customer.authorize()
        steps.append({"step": "token", "status": answer.status})
        steps.append({"step": "healthcheck", "status": (await customer.healthcheck()).status})
        reserved = await customer.reserve(product_id, quantity)
        steps.append({"step": "reserve", "status": reserved.status})
        if reserved.status == 200:
            rid = reserved.body["reservation_id"]
            ordered = await customer.order(rid, _state(request).next_order_id)
            _state(request).next_order_id += 1
            steps.append({"step": "order", "status": ordered.status})
            again = await customer.inventory(rid)
            keys = sum(len(s["inventory"]) for s in again.body) if again.status == 200 else 0
            steps.append({"step": "inventory", "status": again.status, "keys": keys})
    return _json({"steps": steps})


async def _revoke_tokens(request: web.Request) -> web.Response:
    _state(request).tokens.clear()
    return _json({"revoked": True})


# -- webhooks ------------------------------------------------------------------------------


def _schedule_webhooks(state: SimulatorState, order: SimOrder) -> None:
    if state.config.callback_url is None or state.http is None:
        return
    task = asyncio.create_task(_deliver_webhooks(state, order))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def _deliver_webhooks(state: SimulatorState, order: SimOrder) -> None:
    await _post_event(state, order, "order.paid")
    await asyncio.sleep(state.config.key_ready_delay_s)
    await _post_event(state, order, "order.complete")


def signed_event(
    secret: str,
    event_type: str,
    order_id: str,
    occurred_at: datetime,
    *,
    timestamp: str,
    nonce: str,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one webhook as the simulator sends it."""
    body = json.dumps(
        {
            "event_id": f"evt_{uuid.uuid4().hex}",
            "type": event_type,
            "order_id": order_id,
            "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
            "data": {},
        },
        separators=(",", ":"),
    ).encode()
    signature = sign_webhook(secret.encode(), body, timestamp, nonce)
    headers = {
        "Content-Type": "application/json",
        "X-G2A-Timestamp": timestamp,
        "X-G2A-Nonce": nonce,
        "X-G2A-Signature": signature,
    }
    return body, headers


async def _post_event(state: SimulatorState, order: SimOrder, event_type: str) -> None:
    assert state.http is not None
    assert state.config.callback_url is not None
    now = state.config.clock()
    body, headers = signed_event(
        state.config.client_secret,
        event_type,
        order.order_id,
        datetime.fromtimestamp(now, UTC),
        timestamp=str(int(now)),
        nonce=uuid.uuid4().hex,
    )
    try:
        async with state.http.post(state.config.callback_url, data=body, headers=headers) as resp:
            state.webhooks_sent += 1
            log.info(
                "g2a_sim.webhook_sent", type=event_type, order_id=order.order_id, status=resp.status
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning(
            "g2a_sim.webhook_failed",
            type=event_type,
            order_id=order.order_id,
            error=type(exc).__name__,
        )


# -- application ---------------------------------------------------------------------------


def make_simulator_app(config: SimulatorConfig) -> web.Application:
    """The simulator as an aiohttp application (no I/O until it is started)."""
    app = web.Application(middlewares=[_faults])
    app[SIMULATOR_STATE] = SimulatorState(
        config=config,
        faults=config.faults,
        token_lifetime_s=config.token_lifetime_s,
        products=catalogue(config.catalogue_size),
        offers=dict.fromkeys(config.offer_ids, 0),
    )

    async def webhook_client(app: web.Application) -> Any:
        state = app[SIMULATOR_STATE]
        if config.callback_url is not None:
            state.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        yield
        for task in list(state.tasks):
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        if state.http is not None:
            await state.http.close()

    app.cleanup_ctx.append(webhook_client)
    app.router.add_get("/v1/products", _products)
    app.router.add_post("/v1/order", _create_order)
    app.router.add_put("/v1/order/pay/{order_id}", _pay_order)
    app.router.add_get("/v1/order/details/{order_id}", _order_details)
    app.router.add_get("/v1/order/key/{order_id}", _order_key)
    app.router.add_post("/oauth/token", _oauth_token)
    app.router.add_get("/v1/token", _hash_token)
    app.router.add_get("/integration-api/v1/token", _hash_token)
    app.router.add_get("/v3/sales/offers", _list_offers)
    app.router.add_post("/v3/sales/offers", _create_offer)
    app.router.add_patch("/v3/sales/offers/{offer_id}", _update_offer)
    app.router.add_get("/v3/jobs/{job_id}", _job)
    app.router.add_post(f"{ADMIN_PREFIX}/faults", _set_faults)
    app.router.add_get(f"{ADMIN_PREFIX}/state", _get_state)
    app.router.add_post(f"{ADMIN_PREFIX}/revoke-tokens", _revoke_tokens)
    app.router.add_post(f"{ADMIN_PREFIX}/merchant/journey", _merchant_journey)
    return app


@attrs.frozen(kw_only=True)
class RunningSimulator:
    url: str
    """`http://host:port`: the host root; the Export API is `{url}/v1`."""
    app: web.Application
    runner: web.AppRunner

    @property
    def state(self) -> SimulatorState:
        return self.app[SIMULATOR_STATE]

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_simulator(
    config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Start the simulator on `host:port` (0 = a free port) and return where it listens."""
    app = make_simulator_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return RunningSimulator(url=f"http://{shown}:{bound}", app=app, runner=runner)


async def serve_simulator(host: str, port: int, config: SimulatorConfig) -> None:
    """Serve until cancelled."""
    running = await start_simulator(config, host, port)
    log.info("g2a_sim.started", url=running.url)
    try:
        await asyncio.Event().wait()
    finally:
        await running.stop()
