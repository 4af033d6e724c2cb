"""`autokey smoke --merchant`: G2A's merchant stock contract end to end, as G2A would drive it.

autokey runs in-process on the memory store with the real wiring (`serve_app`); a simulated
G2A customer (`adapters/g2a/customer.py`) calls its `/g2a/merchant` API over loopback HTTP:
token, healthcheck, reserve, renew, order, inventory, return, then the injected faults: a
duplicate POST /order, a DELETE /reservation racing an order, and a renewal arriving after
the reservation expired (the smoke uses the shortest lifetime allowed, 10 s).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from contextlib import AsyncExitStack, suppress
from typing import Any

import aiohttp
from aiohttp import web

from autokey.adapters.g2a.customer import Answer, G2ACustomer
from autokey.domain.model.auth import Role
from autokey.entrypoints.settings import load_settings
from autokey.entrypoints.smoke import Smoke, SmokeFailed, _json
from autokey.entrypoints.web.app import serve_app
from autokey.entrypoints.web.context import CONTAINER
from autokey.entrypoints.web.merchant import PREFIX

PRODUCT = 10000068865001
TTL_S = 10


def _expect(answer: Answer, *statuses: int) -> Answer:
    if answer.status not in statuses:
        code = answer.body.get("code") if isinstance(answer.body, dict) else ""
        raise RuntimeError(f"answered {answer.status} {code}")
    return answer


async def merchant_smoke() -> int:
    """Run every step; print the table; 0 when all passed."""
    result = Smoke()
    async with AsyncExitStack() as stack:
        with suppress(SmokeFailed):
            await _steps(result, stack)
    print(result.table())
    passed = all(s.ok for s in result.steps)
    print(f"smoke --merchant: {'passed' if passed else 'FAILED'} ({len(result.steps)} steps)")
    return 0 if passed else 1


async def _steps(result: Smoke, stack: AsyncExitStack) -> None:
    settings = load_settings(
        {
            "AUTOKEY_DATABASE_URL": "memory://",
            "ENCRYPTION_KEY": secrets.token_hex(32),
            "AUTOKEY_LOG_LEVEL": "warning",
            "AUTOKEY_G2A_RESERVATION_TTL_S": str(TTL_S),
            "AUTOKEY_SWEEP_INTERVAL_S": "1",
        }
    )
    app = serve_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api = f"http://127.0.0.1:{runner.addresses[0][1]}"
    container = app[CONTAINER]
    session = await stack.enter_async_context(aiohttp.ClientSession())
    secret, token = await container.auth().issue_token(Role.SELLER, name="smoke")
    client_secret, credential = await container.merchant().create_credentials(
        token.subject, "smoke"
    )
    g2a = G2ACustomer(session, api + PREFIX, credential.client_id, client_secret)
    state: dict[str, Any] = {"g2a_order": 900_000_001}

    async def listing() -> str:
        pool = await _json(session, "POST", f"{api}/key-pools", secret, {"name": "g2a"})
        keys = [f"SMOKE-{uuid.uuid4().hex[:12].upper()}" for _ in range(8)]
        path = f"{api}/key-pools/{pool['id']}/keys/upload"
        await _json(session, "POST", path, secret, {"keys": keys})
        draft = {
            "title": "Sold on G2A",
            "price": {"amount": "5.98", "currency": "EUR"},
            "deliveryType": "AUTO_KEY",
            "keyPoolId": pool["id"],
            "g2aProductId": str(PRODUCT),
        }
        offer = await _json(session, "POST", f"{api}/offers/draft", secret, draft)
        await _json(session, "POST", f"{api}/offers/publish", secret, {"offerId": offer["id"]})
        state["pool"] = pool["id"]
        return f"offer={offer['id']} g2aProductId={PRODUCT} keys=8"

    async def authorize() -> str:
        answer = _expect(await g2a.authorize(), 200)
        return f"bearer, expires_in={answer.body['expires_in']}"

    async def healthcheck() -> str:
        return f"{_expect(await g2a.healthcheck(), 204).status}"

    async def reserve() -> str:
        doomed = _expect(await g2a.reserve(PRODUCT, 1), 200)
        state["doomed"], state["doomed_at"] = doomed.body["reservation_id"], time.monotonic()
        answer = _expect(await g2a.reserve(PRODUCT, 2), 200)
        state["reservation"] = answer.body["reservation_id"]
        return f"reservation={state['reservation']} stock={answer.body['stock']}"

    async def renew() -> str:
        _expect(await g2a.renew(state["reservation"]), 200)
        return "200"

    async def order() -> str:
        answer = _expect(await g2a.order(state["reservation"], state["g2a_order"]), 200)
        state["keys"] = [i["id"] for s in answer.body["stock"] for i in s["inventory"]]
        return f"order={answer.body['order_id']} keys={len(state['keys'])} (not shown)"

    async def inventory() -> str:
        answer = _expect(await g2a.inventory(str(state["g2a_order"])), 200)
        again = [i["id"] for s in answer.body for i in s["inventory"]]
        if again != state["keys"]:
            raise RuntimeError("inventory differs from the order's keys")
        return "same keys again (reveal audited)"

    async def give_back() -> str:
        _expect(await g2a.return_keys(state["reservation"], state["keys"][:1]), 204)
        seen = await _json(session, "GET", f"{api}/seller/g2a/returned-keys", secret)
        return f"204, seller sees {len(seen['items'])} returned key (not resold)"

    async def duplicate_order() -> str:
        answer = _expect(await g2a.duplicate_order(state["reservation"], state["g2a_order"]), 409)
        return f"409 {answer.body['code']}, nothing allocated"

    async def release_racing_order() -> str:
        rid = _expect(await g2a.reserve(PRODUCT, 1), 200).body["reservation_id"]
        ordered, released = await g2a.release_racing_order(rid, state["g2a_order"] + 1)
        outcome = (ordered.status, released.status)
        if outcome not in ((200, 400), (404, 204)):
            raise RuntimeError(f"order/release answered {outcome}")
        return f"order={ordered.status} release={released.status}: one wins"

    async def renewal_after_expiry() -> str:
        await asyncio.sleep(max(0.0, state["doomed_at"] + TTL_S + 0.5 - time.monotonic()))
        renewed = _expect(await g2a.renew(state["doomed"]), 404)
        late = _expect(await g2a.order(state["doomed"], state["g2a_order"] + 2), 410)
        return f"renew={renewed.status} order={late.status} {late.body['code']}"

    for name, action in [
        ("1 seller lists a pool on G2A", listing),
        ("2 G2A gets a token", authorize),
        ("3 healthcheck", healthcheck),
        ("4 reserve", reserve),
        ("5 renew", renew),
        ("6 order delivers the keys", order),
        ("7 inventory again", inventory),
        ("8 return a key", give_back),
        ("9 fault: duplicate POST /order", duplicate_order),
        ("10 fault: DELETE racing an order", release_racing_order),
        ("11 fault: renewal after expiry", renewal_after_expiry),
    ]:
        await result.run(name, action)


def merchant_smoke_main() -> int:
    return asyncio.run(merchant_smoke())
