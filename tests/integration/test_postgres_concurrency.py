"""Concurrency claims proven on real PostgreSQL with real tasks: webhook deliveries and
nonces (SC-004), Idempotency-Key in flight, two sweepers at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.auth import Role
from autokey.domain.model.orders import OrderStatus, UpstreamState
from autokey.domain.model.pages import PageRequest
from autokey.domain.model.webhooks import webhook_signature
from tests import builders as b
from tests.conftest import FakeClock
from tests.http import Api, running_api
from tests.services import scratch_postgres

pytestmark = pytest.mark.postgres
SECRET = "pg-webhook-secret"


@pytest.fixture
async def pg_api() -> AsyncIterator[Api]:
    async with scratch_postgres() as url:
        store = await PostgresStore.open(url, min_size=2, max_size=20)
        await store.migrate()
        try:
            async with running_api(store, environ={"G2A_API_HASH": SECRET}) as api:
                yield api
        finally:
            await store.close()


def _signed(body: bytes, nonce: str) -> dict[str, str]:
    ts = str(int(time.time()))
    return {
        "X-G2A-Timestamp": ts,
        "X-G2A-Nonce": nonce,
        "Content-Type": "application/json",
        "X-G2A-Signature": webhook_signature(SECRET.encode(), body, ts, nonce),
    }


async def test_concurrent_duplicate_webhooks_apply_once(pg_api: Api) -> None:
    order = await b.sourced_order(pg_api.container.store(), "G2A-777")
    body = json.dumps({"event_id": "evt-dup", "type": "order.paid", "order_id": "G2A-777"}).encode()

    async def deliver(i: int) -> Any:
        response = await pg_api.client.post(
            "/webhooks/g2a", data=body, headers=_signed(body, f"nonce-{i}")
        )
        return response.status, await response.json()

    results = await asyncio.gather(*(deliver(i) for i in range(20)))
    assert all(status == 200 for status, _ in results)
    kinds = Counter(body.get("outcome", body["status"]) for _, body in results)
    assert kinds == {"applied": 1, "duplicate": 19}
    async with pg_api.container.store().transaction() as tx:
        stored = await tx.orders.get(order.id)
        event = await tx.webhooks.get_event("evt-dup")
    assert stored is not None
    assert stored.upstream_state is UpstreamState.PAID
    assert event is not None


async def test_twenty_concurrent_replays_of_one_nonce_accept_exactly_one(pg_api: Api) -> None:
    await b.sourced_order(pg_api.container.store(), "G2A-778")
    body = json.dumps(
        {"event_id": "evt-replay", "type": "order.paid", "order_id": "G2A-778"}
    ).encode()
    headers = _signed(body, "the-only-nonce")
    statuses = await asyncio.gather(
        *(pg_api.client.post("/webhooks/g2a", data=body, headers=headers) for _ in range(20))
    )
    codes = Counter(r.status for r in statuses)
    assert codes == {200: 1, 401: 19}


async def test_concurrent_requests_with_one_idempotency_key_create_one_order(
    pg_api: Api,
) -> None:
    seller, buyer = await pg_api.token(Role.SELLER), await pg_api.token(Role.BUYER)
    pool_id, offer_id = await pg_api.stocked_offer(seller, [f"IDEM-{i:04d}" for i in range(20)])
    keyed = {**buyer, "Idempotency-Key": "one-order-please"}

    async def create() -> tuple[int, Any]:
        response = await pg_api.client.post("/orders", json={"offerId": offer_id}, headers=keyed)
        return response.status, await response.json()

    results = await asyncio.gather(*(create() for _ in range(12)))
    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {201, 409}
    assert statuses[201] >= 1
    created = {body["id"] for status, body in results if status == 201}
    assert len(created) == 1, "one key, one order"
    assert all(body["code"] == "idempotency_in_flight" for status, body in results if status == 409)
    counts = await (await pg_api.client.get(f"/key-pools/{pool_id}", headers=seller)).json()
    assert counts["reservedKeys"] == 1


async def test_two_sweepers_at_once_release_each_expired_order_once() -> None:
    async with scratch_postgres() as url:
        stores = [await PostgresStore.open(url, min_size=1, max_size=4) for _ in range(2)]
        await stores[0].migrate()
        clock = FakeClock()
        try:
            async with running_api(stores[0], clock) as api, running_api(stores[1], clock) as two:
                seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
                pool_id, offer_id = await api.stocked_offer(
                    seller, [f"SWEEP-{i:04d}" for i in range(150)]
                )
                for _ in range(150):
                    await api.client.post("/orders", json={"offerId": offer_id}, headers=buyer)
                clock.advance(10_000)
                swept = await asyncio.gather(
                    api.container.orders().sweep_expired(), two.container.orders().sweep_expired()
                )
                assert sum(swept) == 150
                assert min(swept) > 0, "both sweepers took part"
                counts = await (
                    await api.client.get(f"/key-pools/{pool_id}", headers=seller)
                ).json()
                assert (counts["availableKeys"], counts["reservedKeys"]) == (150, 0)
                orders = await (
                    await api.client.get("/orders?status=canceled&limit=500", headers=buyer)
                ).json()
                assert len(orders["items"]) == 150
                assert {o["status"] for o in orders["items"]} == {OrderStatus.CANCELED.value}
        finally:
            for store in stores:
                await store.close()


async def test_a_stock_sweep_holding_its_offers_never_blocks_a_new_order() -> None:
    async with scratch_postgres() as url:
        store = await PostgresStore.open(url, min_size=2, max_size=4)
        try:
            await store.migrate()
            owner = b.seller()
            pool = b.pool(owner)
            offer = b.offer(owner, pool.id)
            async with store.transaction() as tx:
                await tx.pools.add(pool)
                await tx.offers.add(offer)
            order = b.order(offer, b.seller())
            async with store.transaction() as sweep:
                locked = await sweep.offers.lock_stocked(None, PageRequest())
                assert [o.id for o in locked.items] == [offer.id]

                async def place() -> None:
                    async with store.transaction() as tx:
                        await tx.orders.add(order)  # its foreign key reads the locked offer

                await asyncio.wait_for(place(), timeout=10)  # FOR UPDATE would wait here
            async with store.transaction() as tx:
                assert await tx.orders.get(order.id) == order
        finally:
            await store.close()
