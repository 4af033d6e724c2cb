"""The seed's verification checklist (steps 1-9), automated over HTTP against a real
`autokey serve` process on PostgreSQL, with bearer tokens instead of sellerId/buyerId."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.integration.server import autokey, serve, server_env, token
from tests.services import scratch_postgres

pytestmark = pytest.mark.postgres


async def _json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    auth: str,
    body: Any = None,
    expect: int = 200,
) -> Any:
    async with session.request(
        method, url, json=body, headers={"Authorization": f"Bearer {auth}"}
    ) as response:
        payload = await response.json(content_type=None)
        assert response.status == expect, payload
        return payload


async def test_seed_verification_checklist_over_http_on_postgres() -> None:
    async with scratch_postgres() as url:
        env = server_env(url)
        autokey("migrate", env=env)
        seller, buyer = token("seller", env), token("buyer", env)
        async with serve(env) as api, aiohttp.ClientSession() as s:
            # 1. create a key pool
            pool = await _json(s, "POST", f"{api}/key-pools", seller, {}, 201)
            # 2. upload keys: added, duplicates detected, invalid rejected
            report = await _json(
                s,
                "POST",
                f"{api}/key-pools/{pool['id']}/keys/upload",
                seller,
                {
                    "keys": [
                        "XXXXX-XXXXX-XXXXX",
                        "YYYYY-YYYYY-YYYYY",
                        "ZZZZZ-ZZZZZ-ZZZZZ",
                        "XXXXX-XXXXX-XXXXX",
                        "bad",
                    ]
                },
            )
            assert (report["added"], report["duplicates"], report["invalid"]) == (3, 1, 1)
            # 3. counts
            counts = await _json(s, "GET", f"{api}/key-pools/{pool['id']}", seller)
            assert counts["availableKeys"] == 3
            # 4. AUTO_KEY offer, published, in stock
            offer = await _json(
                s,
                "POST",
                f"{api}/offers/draft",
                seller,
                {
                    "title": "Game",
                    "price": {"amount": "9.99", "currency": "EUR"},
                    "deliveryType": "AUTO_KEY",
                    "keyPoolId": pool["id"],
                },
                201,
            )
            await _json(s, "POST", f"{api}/offers/publish", seller, {"offerId": offer["id"]})
            listed = await _json(s, "GET", f"{api}/seller/offers", seller)
            assert listed["items"][0]["availability"] == "in_stock"
            # 5-7. order, pay, fulfill: a decrypted key, the same again, available -1
            order = await _json(s, "POST", f"{api}/orders", buyer, {"offerId": offer["id"]}, 201)
            await _json(s, "POST", f"{api}/orders/{order['id']}/pay", buyer)
            first = await _json(s, "POST", f"{api}/orders/{order['id']}/fulfill", buyer)
            again = await _json(s, "POST", f"{api}/orders/{order['id']}/fulfill", buyer)
            assert first["keys"] == again["keys"]
            assert first["keys"][0]["key"] == "XXXXX-XXXXX-XXXXX"
            counts = await _json(s, "GET", f"{api}/key-pools/{pool['id']}", seller)
            assert counts["availableKeys"] == 2
            # 8. two orders fulfilled simultaneously get different keys
            orders = [
                await _json(s, "POST", f"{api}/orders", buyer, {"offerId": offer["id"]}, 201)
                for _ in range(2)
            ]
            for o in orders:
                await _json(s, "POST", f"{api}/orders/{o['id']}/pay", buyer)
            both = await asyncio.gather(
                *(_json(s, "POST", f"{api}/orders/{o['id']}/fulfill", buyer) for o in orders)
            )
            keys = {b["keys"][0]["key"] for b in both}
            assert keys == {"YYYYY-YYYYY-YYYYY", "ZZZZZ-ZZZZZ-ZZZZZ"}
            # 9. depleted: out of stock, new orders refused; restock: in stock again
            listed = await _json(s, "GET", f"{api}/seller/offers", seller)
            assert listed["items"][0]["availability"] == "out_of_stock"
            refused = await _json(
                s, "POST", f"{api}/orders", buyer, {"offerId": offer["id"]}, expect=400
            )
            assert refused["code"] == "out_of_stock"
            await _json(
                s,
                "POST",
                f"{api}/key-pools/{pool['id']}/keys/upload",
                seller,
                {"keys": ["RESTOCK-00001"]},
            )
            listed = await _json(s, "GET", f"{api}/seller/offers", seller)
            assert listed["items"][0]["availability"] == "in_stock"
