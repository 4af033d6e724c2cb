"""`autokey smoke`: the sandbox smoke run (seed FR-009, SC-005).

token -> product list -> price/stock of one product -> local G2A offer, order, payment ->
fulfill (G2A order created and paid) -> signed webhook -> local order updated -> key retrieved.

autokey itself runs in-process on the memory store with the real wiring (`serve_app`). With
no G2A settings the G2A simulator is started on loopback; with settings, their sandbox is
used. Live is refused unless `--live`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, suppress
from decimal import ROUND_CEILING, Decimal
from typing import Any

import aiohttp
import attrs
from aiohttp import web

from autokey.adapters.g2a.auth import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_EMAIL
from autokey.adapters.g2a.simulator import SimulatorConfig, start_simulator
from autokey.domain.model.auth import Role
from autokey.domain.model.marketplace import MarketplaceEnvironment
from autokey.domain.model.webhooks import webhook_signature
from autokey.entrypoints.settings import load_settings
from autokey.entrypoints.web.app import serve_app
from autokey.entrypoints.web.context import CONTAINER

FIXTURE_PRODUCT = "10000068865001"


@attrs.define
class Step:
    name: str
    ok: bool = False
    ms: float = 0.0
    detail: str = ""


class SmokeFailed(Exception):
    pass


class Smoke:
    def __init__(self) -> None:
        self.steps: list[Step] = []

    async def run(self, name: str, action: Callable[[], Awaitable[str]]) -> None:
        step = Step(name)
        self.steps.append(step)
        started = time.perf_counter()
        try:
            step.detail = await action()
            step.ok = True
        except Exception as exc:
            step.detail = f"{type(exc).__name__}: {exc}"[:120]
            raise SmokeFailed(name) from exc
        finally:
            step.ms = (time.perf_counter() - started) * 1000

    def table(self) -> str:
        rows = [f"{'step':<34} {'status':<6} {'ms':>8}  detail"]
        for s in self.steps:
            rows.append(f"{s.name:<34} {'ok' if s.ok else 'FAIL':<6} {s.ms:>8.1f}  {s.detail}")
        return "\n".join(rows)


async def _json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str,
    body: Any = None,
    expect: tuple[int, ...] = (200, 201),
) -> Any:
    async with session.request(
        method, url, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        payload = await response.json(content_type=None)
        if response.status not in expect:
            raise RuntimeError(
                f"{method} {url.split('/', 3)[-1]} -> {response.status} "
                f"{payload.get('code') if isinstance(payload, dict) else ''}"
            )
        return payload


async def smoke(environ: Mapping[str, str], *, live: bool) -> int:
    """Run every step; print the table; 0 when all passed."""
    result = Smoke()
    async with AsyncExitStack() as stack:
        with suppress(SmokeFailed):
            await _steps(result, stack, environ, live=live)
    print(result.table())
    passed = all(s.ok for s in result.steps)
    print(f"smoke: {'passed' if passed else 'FAILED'} ({len(result.steps)} steps)")
    return 0 if passed else 1


async def _steps(
    result: Smoke, stack: AsyncExitStack, environ: Mapping[str, str], *, live: bool
) -> None:
    g2a_env = {k: v for k, v in environ.items() if k.startswith("G2A_")}
    if not any(g2a_env.get(k) for k in ("G2A_API_URL", "G2A_API_KEY")):
        simulator = await start_simulator(SimulatorConfig(key_ready_delay_s=0.5))
        stack.push_async_callback(simulator.stop)
        g2a_env = {
            "G2A_API_URL": simulator.url,
            "G2A_API_KEY": SANDBOX_CLIENT_ID,
            "G2A_API_HASH": SANDBOX_CLIENT_SECRET,
            "G2A_EMAIL": SANDBOX_EMAIL,
            "G2A_ENV": "sandbox",
        }
    settings = load_settings(
        {
            **g2a_env,
            "AUTOKEY_DATABASE_URL": "memory://",
            "ENCRYPTION_KEY": secrets.token_hex(32),
            "AUTOKEY_LOG_LEVEL": environ.get("AUTOKEY_LOG_LEVEL", "warning"),
            "AUTOKEY_PAYMENTS": "simulated",
        }
    )
    assert settings.g2a is not None
    if settings.g2a.env is MarketplaceEnvironment.LIVE and not live:
        result.steps.append(Step("refuse live", False, 0.0, "G2A_ENV=live needs --live"))
        raise SmokeFailed("live")
    app = serve_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api = f"http://127.0.0.1:{runner.addresses[0][1]}"
    container = app[CONTAINER]
    market = container.marketplace()
    assert market is not None
    session = await stack.enter_async_context(aiohttp.ClientSession())
    seller = (await container.auth().issue_token(Role.SELLER, name="smoke"))[0]
    buyer = (await container.auth().issue_token(Role.BUYER, name="smoke"))[0]
    state: dict[str, Any] = {}

    async def token() -> str:
        probe = await market.probe_token()
        return f"env={settings.g2a.env.value if settings.g2a else '?'} source={probe.source}"

    async def products() -> str:
        page = await market.list_products(1)
        state["product"] = next(
            (p.id for p in page.items if p.id == FIXTURE_PRODUCT), page.items[0].id
        )
        return f"total={page.total} first page={len(page.items)}"

    async def price() -> str:
        product = await market.get_product(state["product"])
        # EUR has two minor units, and the API takes plain notation only.
        state["max"] = f"{(product.min_price * 2).quantize(Decimal('0.01'), ROUND_CEILING):f}"
        return f"id={product.id} minPrice={product.min_price} qty={product.qty}"

    async def local_order() -> str:
        pool = await _json(session, "POST", f"{api}/key-pools", seller, {"name": "g2a"})
        offer = await _json(
            session,
            "POST",
            f"{api}/offers/draft",
            seller,
            {
                "title": "Smoke",
                "price": {"amount": "49.99", "currency": "EUR"},
                "deliveryType": "G2A",
                "keyPoolId": pool["id"],
                "g2aProductId": state["product"],
                "maxPrice": {"amount": state["max"], "currency": "EUR"},
            },
        )
        await _json(session, "POST", f"{api}/offers/publish", seller, {"offerId": offer["id"]})
        order = await _json(session, "POST", f"{api}/orders", buyer, {"offerId": offer["id"]})
        await _json(session, "POST", f"{api}/orders/{order['id']}/pay", buyer)
        state["order"] = order["id"]
        return f"order={order['id']} PAID"

    async def fulfill() -> str:
        order = await _json(
            session, "POST", f"{api}/orders/{state['order']}/fulfill", buyer, expect=(200, 202)
        )
        state["upstream"] = order["upstreamOrderId"]
        return f"{order['status']} g2a_order={order['upstreamOrderId']} ({order['upstreamState']})"

    async def webhook() -> str:
        body = json.dumps(
            {
                "event_id": f"smoke-{uuid.uuid4().hex}",
                "type": "order.complete",
                "order_id": state["upstream"],
                "occurred_at": None,
                "data": {},
            }
        ).encode()
        ts, nonce = str(int(time.time())), uuid.uuid4().hex
        secret = settings.webhook_secrets[0]
        async with session.post(
            f"{api}/webhooks/g2a",
            data=body,
            headers={
                "X-G2A-Timestamp": ts,
                "X-G2A-Nonce": nonce,
                "Content-Type": "application/json",
                "X-G2A-Signature": webhook_signature(secret, body, ts, nonce),
            },
        ) as response:
            reply = await response.json()
            if response.status != 200:
                raise RuntimeError(f"webhook -> {response.status} {reply.get('code')}")
        return f"{reply['status']} outcome={reply.get('outcome')}"

    async def key() -> str:
        for _ in range(50):
            order = await _json(
                session, "POST", f"{api}/orders/{state['order']}/fulfill", buyer, expect=(200, 202)
            )
            if order["status"] == "FULFILLED" and order["keys"]:
                return f"FULFILLED, {len(order['keys'])} key delivered (not shown)"
            await asyncio.sleep(0.2)
        raise RuntimeError("key not delivered within 10 s")

    for name, action in [
        ("1 token (import api)", token),
        ("2 product list", products),
        ("3 price and stock", price),
        ("4 local offer, order, payment", local_order),
        ("5 fulfill: g2a order create + pay", fulfill),
        ("6 signed webhook", webhook),
        ("7 key retrieved", key),
    ]:
        await result.run(name, action)


def smoke_main(*, live: bool) -> int:
    return asyncio.run(smoke(os.environ, live=live))
