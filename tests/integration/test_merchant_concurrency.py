"""G2A's merchant API under real concurrency, on real `autokey serve` processes over real
PostgreSQL: 300 single-key reservations against 200 keys, orders on every reservation, and
buyer-API orders racing G2A for the same pool."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import attrs
import pytest

from tests.integration.server import autokey, mean_batch_sizes, serve, server_env, with_metrics
from tests.services import scratch_postgres

pytestmark = pytest.mark.postgres
PRODUCT = 10000068865001
KEYS = 200


@attrs.frozen
class Market:
    env: dict[str, str]
    apis: list[str]
    session: aiohttp.ClientSession
    merchant: dict[str, str]
    buyer: dict[str, str]
    offer: str
    uploaded: frozenset[str]

    def api(self, i: int) -> str:
        return self.apis[i % len(self.apis)]


def _cli_json(*args: str, env: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(autokey(*args, env=env))
    return found


@asynccontextmanager
async def _market(processes: int) -> AsyncIterator[Market]:
    """`processes` servers on one scratch database; a published AUTO_KEY offer of 200 keys
    sold on G2A, a merchant token for its seller and a buyer token. One server also serves
    /metrics."""
    async with scratch_postgres() as url, AsyncExitStack() as stack:
        env = with_metrics(server_env(url)) if processes == 1 else server_env(url)
        autokey("migrate", env=env)
        seller = _cli_json("token", "create", "--role", "seller", env=env)
        buyer = _cli_json("token", "create", "--role", "buyer", env=env)
        credentials = _cli_json(
            "g2a", "merchant-credentials", "create", "--seller", seller["subject"], env=env
        )
        apis = [await stack.enter_async_context(serve(env)) for _ in range(processes)]
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=400))
        )
        auth = {"Authorization": f"Bearer {seller['token']}"}
        async with session.post(f"{apis[0]}/key-pools", json={}, headers=auth) as r:
            pool = (await r.json())["id"]
        uploaded = [f"MCONC-{i:05d}-KEY" for i in range(KEYS)]
        async with session.post(
            f"{apis[0]}/key-pools/{pool}/keys/upload", json={"keys": uploaded}, headers=auth
        ) as r:
            assert (await r.json())["added"] == KEYS
        draft = {
            "title": "Hot game",
            "price": {"amount": "1.00", "currency": "EUR"},
            "deliveryType": "AUTO_KEY",
            "keyPoolId": pool,
            "g2aProductId": str(PRODUCT),
        }
        async with session.post(f"{apis[0]}/offers/draft", json=draft, headers=auth) as r:
            offer = (await r.json())["id"]
        async with session.post(
            f"{apis[0]}/offers/publish", json={"offerId": offer}, headers=auth
        ) as r:
            assert r.status == 200
        query = {
            "grant_type": "client_credentials",
            "client_id": credentials["clientId"],
            "client_secret": credentials["clientSecret"],
        }
        async with session.get(f"{apis[-1]}/g2a/merchant/oauth/token", params=query) as r:
            access = (await r.json())["access_token"]
        yield Market(
            env=env,
            apis=apis,
            session=session,
            merchant={"Authorization": f"Bearer {access}"},
            buyer={"Authorization": f"Bearer {buyer['token']}"},
            offer=offer,
            uploaded=frozenset(uploaded),
        )


async def _reserve(m: Market, i: int) -> tuple[int, Any]:
    body = [{"product_id": PRODUCT, "quantity": 1, "additional_data": {"unit_price": "1.00"}}]
    async with m.session.post(
        f"{m.api(i)}/g2a/merchant/reservation", json=body, headers=m.merchant
    ) as r:
        return r.status, await r.json()


async def _order(m: Market, i: int, reservation_id: str) -> list[str]:
    body = {"reservation_id": reservation_id, "g2a_order_id": 1_000_000 + i}
    async with m.session.post(f"{m.api(i)}/g2a/merchant/order", json=body, headers=m.merchant) as r:
        result = await r.json()
        assert r.status == 200, result
    return [item["value"] for stock in result["stock"] for item in stock["inventory"]]


async def _buyer_flow(m: Market, i: int) -> str | None:
    api = m.api(i)
    async with m.session.post(f"{api}/orders", json={"offerId": m.offer}, headers=m.buyer) as r:
        body = await r.json()
        if r.status != 201:
            assert body["code"] == "out_of_stock", body
            return None
    for step in ("pay", "fulfill"):
        async with m.session.post(f"{api}/orders/{body['id']}/{step}", headers=m.buyer) as r:
            result = await r.json()
            assert r.status == 200, result
    key: str = result["keys"][0]["key"]
    return key


@pytest.mark.parametrize("processes", [1, 2])
async def test_300_reservations_against_200_keys_then_200_orders(processes: int) -> None:
    async with _market(processes) as m:
        results = await asyncio.gather(*(_reserve(m, i) for i in range(300)))
        outcomes = Counter(
            (status, body.get("code")) for status, body in results if isinstance(body, dict)
        )
        assert outcomes == {(200, None): 200, (400, "insufficient_stock"): 100}
        reserved = [body["reservation_id"] for status, body in results if status == 200]
        assert len(set(reserved)) == 200
        delivered = await asyncio.gather(*(_order(m, i, r) for i, r in enumerate(reserved)))
        keys = [k for ks in delivered for k in ks]
        assert len(keys) == len(set(keys)) == 200
        assert set(keys) == m.uploaded


async def test_buyer_orders_racing_g2a_reservations_never_share_a_key() -> None:
    async with _market(2) as m:

        async def g2a(i: int) -> list[str]:
            status, body = await _reserve(m, i)
            if status != 200:
                assert body["code"] == "insufficient_stock", body
                return []
            return await _order(m, i, body["reservation_id"])

        g2a_runs, buyer_runs = await asyncio.gather(
            asyncio.gather(*(g2a(i) for i in range(150))),
            asyncio.gather(*(_buyer_flow(m, i) for i in range(150))),
        )
        g2a_keys = [k for ks in g2a_runs for k in ks]
        buyer_keys = [k for k in buyer_runs if k is not None]
        assert g2a_keys
        assert buyer_keys
        assert len(g2a_keys) + len(buyer_keys) == KEYS
        assert set(g2a_keys).isdisjoint(buyer_keys)
        assert set(g2a_keys) | set(buyer_keys) == m.uploaded


async def test_failing_merchant_calls_inside_batches_leave_the_others_correct() -> None:
    """Reservations of an unknown product, repeated orders and orders of unknown
    reservations race good calls in the same batches: each failing call gets its own
    answer, every good reservation its own key."""
    async with _market(1) as m:
        unknown = [{"product_id": PRODUCT + 1, "quantity": 1}]

        async def stranger(i: int) -> tuple[int, Any]:
            async with m.session.post(
                f"{m.api(i)}/g2a/merchant/reservation", json=unknown, headers=m.merchant
            ) as r:
                return r.status, await r.json()

        reserved = await asyncio.gather(
            *(_reserve(m, i) for i in range(60)), *(stranger(i) for i in range(10))
        )
        assert [status for status, _ in reserved] == [200] * 60 + [404] * 10
        ids = [body["reservation_id"] for _, body in reserved[:60]]

        async def order(i: int, reservation_id: str) -> tuple[int, list[str]]:
            body = {"reservation_id": reservation_id, "g2a_order_id": 2_000_000 + i}
            async with m.session.post(
                f"{m.api(i)}/g2a/merchant/order", json=body, headers=m.merchant
            ) as r:
                result = await r.json()
                keys = [item["value"] for s in result.get("stock", []) for item in s["inventory"]]
                return r.status, keys

        ordered = await asyncio.gather(
            *(order(i, r) for i, r in enumerate(ids)),
            *(order(100 + i, r) for i, r in enumerate(ids[:10])),  # the same reservations again
            *(order(200 + i, f"no-such-{i}") for i in range(10)),
        )
        first, again, missing = ordered[:10], ordered[60:70], ordered[70:]
        assert sorted(s for s, _ in first + again) == [200] * 10 + [409] * 10
        assert [s for s, _ in ordered[10:60]] == [200] * 50
        assert [s for s, _ in missing] == [404] * 10
        keys = [k for status, ks in ordered if status == 200 for k in ks]
        assert len(keys) == len(set(keys)) == 60
        sizes = await mean_batch_sizes(m.session, m.env)
        assert sizes["g2a_reserve"] > 1, sizes
        assert sizes["g2a_order"] > 1, sizes
