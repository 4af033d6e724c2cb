"""Offers and orders over HTTP, on the in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.auth import Role
from autokey.domain.model.idempotency import IdempotencyRecord, IdempotencyState
from tests.conftest import FakeClock
from tests.http import Api, running_api


@pytest.fixture
async def api(clock: FakeClock) -> AsyncIterator[Api]:
    async with running_api(MemoryStore(), clock) as running:
        yield running


async def _call(
    api: Api, method: str, path: str, headers: dict[str, str], body: Any = None, status: int = 200
) -> Any:
    response = await api.client.request(method, path, json=body, headers=headers)
    payload = await response.json()
    assert response.status == status, payload
    return payload


async def test_seed_checklist_happy_path_and_out_of_stock(api: Api) -> None:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    pool, offer = await api.stocked_offer(seller, ["XXXXX-XXXXX-XXXXX", "YYYYY-YYYYY-YYYYY"])
    listed = await _call(api, "GET", "/seller/offers", seller)
    assert [(o["availability"], o["autoKeyAvailableCount"]) for o in listed["items"]] == [
        ("in_stock", 2)
    ]

    order = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201)
    assert order["status"] == "PENDING"
    assert order["total"] == {"amount": "19.99", "currency": "EUR"}
    await _call(api, "POST", f"/orders/{order['id']}/pay", buyer)
    done = await _call(api, "POST", f"/orders/{order['id']}/fulfill", buyer)
    assert done["status"] == "FULFILLED"
    assert [k["key"] for k in done["keys"]] == ["XXXXX-XXXXX-XXXXX"]
    again = await _call(api, "POST", f"/orders/{order['id']}/fulfill", buyer)
    assert again["keys"] == done["keys"]
    assert (await _call(api, "GET", f"/orders/{order['id']}", buyer))["keys"] == done["keys"]
    counts = await _call(api, "GET", f"/key-pools/{pool}", seller)
    assert (counts["availableKeys"], counts["deliveredKeys"]) == (1, 1)

    second = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201)
    await _call(api, "POST", f"/orders/{second['id']}/pay", buyer)
    await _call(api, "POST", f"/orders/{second['id']}/fulfill", buyer)
    listed = await _call(api, "GET", "/seller/offers", seller)
    assert listed["items"][0]["availability"] == "out_of_stock"
    refused = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 400)
    assert refused["code"] == "out_of_stock"

    await _call(api, "POST", f"/key-pools/{pool}/keys/upload", seller, {"keys": ["ZZZZZ-1234"]})
    assert (await _call(api, "GET", f"/offers/{offer}", buyer))["availability"] == "in_stock"
    events = await _call(api, "GET", f"/key-pools/{pool}/events?limit=100", seller)
    actions = {e["action"] for e in events["items"]}
    assert {"keys.uploaded", "keys.reserved", "keys.delivered", "keys.revealed"} <= actions


async def test_orders_for_unpublished_or_unknown_offers_are_refused(api: Api) -> None:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    pool = (await _call(api, "POST", "/key-pools", seller, {}, 201))["id"]
    draft = await _call(
        api,
        "POST",
        "/offers/draft",
        seller,
        {
            "title": "Draft",
            "price": {"amount": "1", "currency": "USD"},
            "deliveryType": "AUTO_KEY",
            "keyPoolId": pool,
        },
        201,
    )
    for offer_id in (draft["id"], "00000000-0000-7000-8000-000000000000"):
        problem = await _call(api, "POST", "/orders", buyer, {"offerId": offer_id}, 400)
        assert problem["code"] == "offer_not_available"
    assert (await _call(api, "GET", f"/offers/{draft['id']}", buyer, status=404))["code"] == (
        "not_found"
    )


async def test_offer_validation_errors(api: Api) -> None:
    seller, other = await api.token(Role.SELLER), await api.token(Role.SELLER)
    foreign_pool = (await _call(api, "POST", "/key-pools", other, {}, 201))["id"]
    base = {
        "title": "T",
        "price": {"amount": "1.00", "currency": "EUR"},
        "deliveryType": "AUTO_KEY",
    }
    cases = [
        ({**base}, "required_for_auto_key"),
        ({**base, "keyPoolId": foreign_pool}, "unknown_key_pool"),
        ({**base, "deliveryType": "CARRIER_PIGEON"}, "unknown_value"),
        (
            {**base, "price": {"amount": "-1", "currency": "EUR"}, "keyPoolId": foreign_pool},
            "not_a_decimal",
        ),
        (
            {**base, "price": {"amount": "1", "currency": "euro"}, "keyPoolId": foreign_pool},
            "invalid_currency",
        ),
    ]
    for body, code in cases:
        problem = await _call(api, "POST", "/offers/draft", seller, body, 400)
        assert problem["code"] == "invalid_input"
        assert code in {e["code"] for e in problem["errors"]}, (body, problem)


async def test_fulfilling_unpaid_or_canceled_orders_is_409(api: Api) -> None:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    pool, offer = await api.stocked_offer(seller, ["AAAAA-1", "BBBBB-2"])
    order = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201)
    assert (await _call(api, "POST", f"/orders/{order['id']}/fulfill", buyer, status=409))[
        "code"
    ] == "order_not_paid"
    canceled = await _call(api, "POST", f"/orders/{order['id']}/cancel", buyer)
    assert canceled["status"] == "CANCELED"
    assert (await _call(api, "GET", f"/key-pools/{pool}", seller))["availableKeys"] == 2
    assert (await _call(api, "POST", f"/orders/{order['id']}/fulfill", buyer, status=409))[
        "code"
    ] == "order_not_paid"
    assert (await _call(api, "POST", f"/orders/{order['id']}/pay", buyer, status=409))[
        "code"
    ] == "illegal_transition"


async def test_other_buyers_orders_are_invisible(api: Api) -> None:
    seller, buyer, other = (
        await api.token(Role.SELLER),
        await api.token(Role.BUYER),
        await api.token(Role.BUYER),
    )
    _, offer = await api.stocked_offer(seller, ["AAAAA-1"])
    order = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201)
    for method, suffix in [("GET", ""), ("POST", "/pay"), ("POST", "/cancel")]:
        await _call(api, method, f"/orders/{order['id']}{suffix}", other, status=404)
    assert (await _call(api, "GET", "/orders", other))["items"] == []


async def test_expired_reservations_are_swept_and_cannot_be_paid(
    api: Api, clock: FakeClock
) -> None:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    pool, offer = await api.stocked_offer(seller, ["AAAAA-1"])
    order = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201)
    clock.advance(901)
    assert (await _call(api, "POST", f"/orders/{order['id']}/pay", buyer, status=409))[
        "code"
    ] == "reservation_expired"
    assert await api.container.orders().sweep_expired() == 1
    assert (await _call(api, "GET", f"/orders/{order['id']}", buyer))["cancelReason"] == (
        "reservation_expired"
    )
    assert (await _call(api, "GET", f"/key-pools/{pool}", seller))["availableKeys"] == 1


async def test_orders_list_newest_first_with_status_filter(api: Api) -> None:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    _, offer = await api.stocked_offer(seller, [f"KEY-{i:05d}" for i in range(3)])
    ids = [
        (await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201))["id"]
        for _ in range(3)
    ]
    await _call(api, "POST", f"/orders/{ids[0]}/pay", buyer)
    page = await _call(api, "GET", "/orders?limit=2", buyer)
    assert [o["id"] for o in page["items"]] == [ids[2], ids[1]]
    rest = await _call(api, "GET", f"/orders?limit=2&cursor={page['nextCursor']}", buyer)
    assert [o["id"] for o in rest["items"]] == [ids[0]]
    paid = await _call(api, "GET", "/orders?status=paid", buyer)
    assert [o["id"] for o in paid["items"]] == [ids[0]]


async def test_idempotency_key_replays_rejects_mismatch_and_in_flight(
    api: Api, clock: FakeClock
) -> None:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    pool, offer = await api.stocked_offer(seller, ["AAAAA-1", "BBBBB-2"])
    keyed = {**buyer, "Idempotency-Key": "create-1"}
    first = await api.client.post("/orders", json={"offerId": offer}, headers=keyed)
    second = await api.client.post("/orders", json={"offerId": offer}, headers=keyed)
    assert (first.status, second.status) == (201, 201)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await first.json() == await second.json()
    assert (await _call(api, "GET", f"/key-pools/{pool}", seller))["reservedKeys"] == 1

    mismatch = await api.client.post(
        "/orders", json={"offerId": offer, "quantity": 2}, headers=keyed
    )
    assert mismatch.status == 422
    assert (await mismatch.json())["code"] == "idempotency_key_reused"

    now = clock.now()
    async with api.container.store().transaction() as tx:
        await tx.idempotency.insert(
            IdempotencyRecord(
                scope=f"buyer:{buyer['X-Subject']}",
                key="busy-1",
                fingerprint=b"?" * 32,
                state=IdempotencyState.IN_FLIGHT,
                created_at=now,
                locked_until=now + timedelta(seconds=60),
                expires_at=now + timedelta(hours=24),
            )
        )
    busy = await api.client.post(
        "/orders", json={"offerId": offer}, headers={**buyer, "Idempotency-Key": "busy-1"}
    )
    assert busy.status == 409
    assert (await busy.json())["code"] == "idempotency_in_flight"
    assert busy.headers["Retry-After"] == "60"


async def test_a_failed_keyed_request_can_be_retried_with_the_same_key(api: Api) -> None:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    pool, offer = await api.stocked_offer(seller, [])
    keyed = {**buyer, "Idempotency-Key": "retry-me"}
    assert (await api.client.post("/orders", json={"offerId": offer}, headers=keyed)).status == 400
    await _call(api, "POST", f"/key-pools/{pool}/keys/upload", seller, {"keys": ["LATE-KEY-1"]})
    assert (await api.client.post("/orders", json={"offerId": offer}, headers=keyed)).status == 201


async def test_concurrent_orders_on_memory_never_share_keys(api: Api) -> None:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    _, offer = await api.stocked_offer(seller, [f"KEY-{i:05d}" for i in range(10)])

    async def flow() -> int:
        response = await api.client.post("/orders", json={"offerId": offer}, headers=buyer)
        return response.status

    statuses = await asyncio.gather(*(flow() for _ in range(15)))
    assert sorted(statuses) == [201] * 10 + [400] * 5


async def test_order_transitions_are_counted_once_per_real_transition(api: Api) -> None:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    _, offer = await api.stocked_offer(seller, ["AAAAA-1", "BBBBB-2"])
    order = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201)
    await _call(api, "POST", f"/orders/{order['id']}/pay", buyer)
    for _ in range(3):  # repeats return the same keys and are no new transition
        await _call(api, "POST", f"/orders/{order['id']}/fulfill", buyer)
    other = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201)
    await _call(api, "POST", f"/orders/{other['id']}/cancel", buyer)
    text = await (await api.metrics.get("/metrics")).text()
    expected = {"created": 2.0, "paid": 1.0, "fulfilled": 1.0, "canceled": 1.0, "expired": 0.0}
    for transition, value in expected.items():
        assert f'autokey_order_transitions_total{{transition="{transition}"}} {value}' in text


async def test_production_without_a_payment_adapter_answers_501(clock: FakeClock) -> None:
    production = {"AUTOKEY_ENV": "production", "ENCRYPTION_KEY": "cd" * 32}
    async with running_api(MemoryStore(), clock, production) as api:
        seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
        _, offer = await api.stocked_offer(seller, ["AAAAA-1"])
        order = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201)
        problem = await _call(api, "POST", f"/orders/{order['id']}/pay", buyer, status=501)
        assert problem["code"] == "payments_not_configured"
        assert (await _call(api, "GET", f"/orders/{order['id']}", buyer))["status"] == "PENDING"


async def test_a_seller_sees_its_sales_with_key_ids_but_never_plaintext(api: Api) -> None:
    seller, other, buyer = await api.token(), await api.token(), await api.token(Role.BUYER)
    _pool, offer = await api.stocked_offer(seller, ["SALE1-AAAAA", "SALE2-BBBBB"])
    _other_pool, other_offer = await api.stocked_offer(other, ["OTHER-CCCCC"])
    done = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201)
    await _call(api, "POST", f"/orders/{done['id']}/pay", buyer)
    delivered = await _call(api, "POST", f"/orders/{done['id']}/fulfill", buyer)
    pending = await _call(api, "POST", "/orders", buyer, {"offerId": offer}, 201)
    await _call(api, "POST", "/orders", buyer, {"offerId": other_offer}, 201)

    response = await api.client.get("/seller/orders", headers=seller)
    text = await response.text()
    sales = (await response.json())["items"]
    assert [s["order"]["id"] for s in sales] == [pending["id"], done["id"]]
    assert sales[1]["deliveredKeyIds"] == [delivered["keys"][0]["id"]]
    assert sales[0]["deliveredKeyIds"] == []
    assert "SALE1" not in text
    assert "SALE2" not in text
    assert all(s["order"]["keys"] is None for s in sales)

    fulfilled = await _call(api, "GET", "/seller/orders?status=fulfilled", seller)
    assert [s["order"]["id"] for s in fulfilled["items"]] == [done["id"]]
    by_offer = await _call(api, "GET", f"/seller/orders?offerId={other_offer}", seller)
    assert by_offer["items"] == []
    future = await _call(api, "GET", "/seller/orders?since=2999-01-01T00:00:00Z", seller)
    assert future["items"] == []
    by_api = await _call(api, "GET", "/seller/orders?channel=api", seller)
    assert len(by_api["items"]) == 2
    assert (await _call(api, "GET", "/seller/orders?channel=g2a", seller))["items"] == []
    unknown = await _call(api, "GET", "/seller/orders?channel=ebay", seller, status=400)
    assert unknown["errors"][0] == {"field": "channel", "code": "unknown_value"}
    problem = await _call(api, "GET", "/seller/orders?offerId=nope", seller, status=400)
    assert problem["errors"][0] == {"field": "offerId", "code": "not_an_id"}
    assert (await _call(api, "GET", "/seller/orders", buyer, status=403))["code"] == "forbidden"


async def test_offers_carry_a_low_stock_threshold_and_a_stock_level(api: Api) -> None:
    seller = await api.token(Role.SELLER)
    pool, offer = await api.stocked_offer(seller, ["LOWST-00001", "LOWST-00002"])
    read = await _call(api, "GET", f"/offers/{offer}", seller)
    assert (read["lowStockThreshold"], read["stockLevel"]) == (None, "in_stock")
    draft = {
        "id": offer,
        "title": "Game",
        "price": {"amount": "19.99", "currency": "EUR"},
        "deliveryType": "AUTO_KEY",
        "keyPoolId": pool,
        "lowStockThreshold": 2,
    }
    saved = await _call(api, "POST", "/offers/draft", seller, draft)
    assert (saved["lowStockThreshold"], saved["stockLevel"]) == (2, "low")
    keys = await _call(api, "GET", f"/key-pools/{pool}/keys", seller)
    for key in keys["items"]:
        deleted = await api.client.delete(f"/key-pools/{pool}/keys/{key['id']}", headers=seller)
        assert deleted.status == 204
    listed = await _call(api, "GET", "/seller/offers", seller)
    assert [o["stockLevel"] for o in listed["items"]] == ["out_of_stock"]
    events = await _call(api, "GET", f"/key-pools/{pool}/events", seller)
    stock = [e["action"] for e in events["items"] if e["action"].startswith("offer.")]
    assert stock == ["offer.low_stock", "offer.out_of_stock"]  # checked by invalidations
    for bad in (-1, 1_000_001, "3"):
        problem = await _call(
            api, "POST", "/offers/draft", seller, {**draft, "lowStockThreshold": bad}, 400
        )
        # a wrong type is reported by the converter under the attribute's path
        field = problem["errors"][0]["field"]
        assert field in {"lowStockThreshold", "body.low_stock_threshold"}, problem
