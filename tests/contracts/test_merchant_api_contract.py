"""G2A's merchant stock contract over HTTP, on memory, SQLite and PostgreSQL: every operation's
happy path and every documented error status (g2a-contract.md, "Merchant stock contract")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import attrs
import pytest

from autokey.domain.model.auth import Role
from autokey.domain.model.ids import SubjectId
from autokey.ports.store import Store
from tests.conftest import FakeClock
from tests.http import Api, captured_logs, running_api

M = "/g2a/merchant"
PRODUCT = "10000068865001"
OTHER_PRODUCT = "10000149026001"
KEYS = [f"MERCH-{i:05d}-KEY" for i in range(6)]


@attrs.frozen
class Seller:
    headers: dict[str, str]
    """The seller API token."""
    merchant: dict[str, str]
    """A merchant API token (what G2A holds)."""
    client_id: str
    client_secret: str
    pool: str
    offer: str


async def _seller(api: Api, keys: list[str], product: str = PRODUCT) -> Seller:
    headers = await api.token(Role.SELLER)
    pool, offer = await api.stocked_offer(headers, keys, g2a_product_id=product)
    secret, credential = await api.container.merchant().create_credentials(
        SubjectId(UUID(headers["X-Subject"])), "g2a"
    )
    query = {
        "grant_type": "client_credentials",
        "client_id": credential.client_id,
        "client_secret": secret,
    }
    response = await api.client.get(f"{M}/oauth/token", params=query)
    body = await response.json()
    assert response.status == 200, body
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0
    return Seller(
        headers=headers,
        merchant={"Authorization": f"Bearer {body['access_token']}"},
        client_id=credential.client_id,
        client_secret=secret,
        pool=pool,
        offer=offer,
    )


async def _call(
    api: Api,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any = None,
    status: int = 200,
    code: str | None = None,
    **kw: Any,
) -> Any:
    response = await api.client.request(method, path, json=body, headers=headers, **kw)
    payload = None if response.status == 204 else await response.json()
    assert response.status == status, payload
    if code is not None:
        assert payload["code"] == code
        assert bool(payload.get("message")) is path.startswith(M)  # the contract's body
    return payload


def _reserve(api: Api, who: Seller, *items: tuple[str, int], **kw: Any) -> Any:
    body = [
        {
            "product_id": int(p),
            "quantity": q,
            "additional_data": {"unit_price": "5.98", "auction_base_price": "15.98"},
        }
        for p, q in items
    ]
    return _call(api, "POST", f"{M}/reservation", who.merchant, body, **kw)


async def _available(api: Api, who: Seller) -> int:
    pool = await _call(api, "GET", f"/key-pools/{who.pool}", who.headers)
    available: int = pool["availableKeys"]
    return available


@pytest.fixture
async def api(store: Store, clock: FakeClock) -> AsyncIterator[Api]:
    async with running_api(store, clock, {"AUTOKEY_G2A_RESERVATION_TTL_S": "600"}) as running:
        yield running


async def test_reserve_renew_order_inventory_and_return_happy_path(
    api: Api, clock: FakeClock
) -> None:
    who = await _seller(api, KEYS)
    reserved = await _reserve(api, who, (PRODUCT, 2))
    assert reserved["stock"] == [{"product_id": int(PRODUCT), "inventory_size": 4}]
    assert 1 <= len(reserved["reservation_id"]) <= 36
    assert await _available(api, who) == 4

    clock.advance(500)
    renewed = await _call(api, "PUT", f"{M}/reservation/{reserved['reservation_id']}", who.merchant)
    assert renewed == reserved
    clock.advance(500)  # past the first lifetime, within the renewed one

    order = await _call(
        api,
        "POST",
        f"{M}/order",
        who.merchant,
        {"reservation_id": reserved["reservation_id"], "g2a_order_id": 1530978476},
    )
    [stock] = order["stock"]
    assert stock["product_id"] == int(PRODUCT)
    assert stock["inventory_size"] == 4
    values = [item["value"] for item in stock["inventory"]]
    assert len(set(values)) == 2
    assert set(values) <= set(KEYS)
    assert {item["kind"] for item in stock["inventory"]} == {"text"}

    again = await _call(api, "GET", f"{M}/order/{order['order_id']}/inventory", who.merchant)
    by_g2a_id = await _call(api, "GET", f"{M}/order/1530978476/inventory", who.merchant)
    assert again == by_g2a_id == [stock]

    returned = stock["inventory"][0]["id"]
    await _call(
        api,
        "DELETE",
        f"{M}/order/{order['order_id']}/inventory",
        who.merchant,
        status=204,
        params={"id[]": returned},
    )
    seen = await _call(api, "GET", "/seller/g2a/returned-keys", who.headers)
    assert [r["keyId"] for r in seen["items"]] == [returned]
    assert seen["items"][0]["reservationId"] == reserved["reservation_id"]
    pool = await _call(api, "GET", f"/key-pools/{who.pool}", who.headers)
    assert (pool["availableKeys"], pool["deliveredKeys"]) == (4, 2)


async def test_every_reveal_is_audited_with_the_g2a_channel(api: Api) -> None:
    who = await _seller(api, KEYS)
    reserved = await _reserve(api, who, (PRODUCT, 1))
    body = {"reservation_id": reserved["reservation_id"], "g2a_order_id": 7}
    await _call(api, "POST", f"{M}/order", who.merchant, body)
    await _call(api, "GET", f"{M}/order/7/inventory", who.merchant)
    events = await _call(api, "GET", f"/key-pools/{who.pool}/events", who.headers)
    reveals = [e for e in events["items"] if e["action"] == "keys.revealed"]
    assert len(reveals) == 2
    channels = {e["details"].get("channel") for e in events["items"] if e["orderId"]}
    assert channels == {"g2a"}


async def test_reservation_is_all_or_nothing_over_the_array(api: Api) -> None:
    who = await _seller(api, KEYS[:3])
    other_pool, _ = await api.stocked_offer(
        who.headers, ["OTHER-00001-KEY", "OTHER-00002-KEY"], g2a_product_id=OTHER_PRODUCT
    )
    await _reserve(
        api, who, (PRODUCT, 1), (OTHER_PRODUCT, 3), status=400, code="insufficient_stock"
    )
    assert await _available(api, who) == 3
    other = await _call(api, "GET", f"/key-pools/{other_pool}", who.headers)
    assert other["availableKeys"] == 2
    both = await _reserve(api, who, (PRODUCT, 1), (OTHER_PRODUCT, 2))
    assert both["stock"] == [
        {"product_id": int(PRODUCT), "inventory_size": 2},
        {"product_id": int(OTHER_PRODUCT), "inventory_size": 0},
    ]


async def test_unknown_product_and_another_sellers_product_are_404(api: Api) -> None:
    mine, theirs = await _seller(api, KEYS[:2]), await _seller(api, KEYS[2:4], OTHER_PRODUCT)
    await _reserve(api, mine, ("10000000000001", 1), status=404, code="not_found")
    await _reserve(api, mine, (OTHER_PRODUCT, 1), status=404, code="not_found")
    assert await _available(api, theirs) == 2


async def test_inactive_or_unlisted_offers_cannot_be_reserved(api: Api) -> None:
    who = await _seller(api, KEYS[:2])
    path = f"/offers/{who.offer}/status"
    await _call(api, "PATCH", path, who.headers, {"status": "inactive"})
    await _reserve(api, who, (PRODUCT, 1), status=404, code="not_found")
    await _call(api, "PATCH", path, who.headers, {"status": "active"})
    await _reserve(api, who, (PRODUCT, 1))


@pytest.mark.parametrize(
    "body",
    [
        {"product_id": int(PRODUCT), "quantity": 1},
        [],
        [{"product_id": PRODUCT, "quantity": 1}],
        [{"product_id": 123, "quantity": 1}],
        [{"product_id": int(PRODUCT), "quantity": 0}],
        [{"product_id": int(PRODUCT), "quantity": True}],
        [{"quantity": 1}],
    ],
)
async def test_malformed_reservations_are_400(api: Api, body: Any) -> None:
    who = await _seller(api, KEYS[:2])
    await _call(api, "POST", f"{M}/reservation", who.merchant, body, status=400)
    assert await _available(api, who) == 2


async def test_repeated_order_is_409_and_never_allocates_again(api: Api) -> None:
    who = await _seller(api, KEYS)
    reserved = await _reserve(api, who, (PRODUCT, 2))
    body = {"reservation_id": reserved["reservation_id"], "g2a_order_id": 42}
    first = await _call(api, "POST", f"{M}/order", who.merchant, body)
    await _call(api, "POST", f"{M}/order", who.merchant, body, status=409, code="order_exists")
    assert await _available(api, who) == 4
    again = await _call(api, "GET", f"{M}/order/{first['order_id']}/inventory", who.merchant)
    assert again == first["stock"]


async def test_order_after_expiry_is_410_renewal_after_expiry_is_404(
    api: Api, clock: FakeClock
) -> None:
    who = await _seller(api, KEYS[:2])
    reserved = await _reserve(api, who, (PRODUCT, 2))
    rid = reserved["reservation_id"]
    clock.advance(600)
    body = {"reservation_id": rid, "g2a_order_id": 1}
    await _call(
        api, "POST", f"{M}/order", who.merchant, body, status=410, code="reservation_expired"
    )
    await _call(api, "PUT", f"{M}/reservation/{rid}", who.merchant, status=404, code="not_found")
    clock.advance(1)
    assert await api.container.orders().sweep_expired() == 1
    assert await _available(api, who) == 2
    await _call(
        api, "POST", f"{M}/order", who.merchant, body, status=410, code="reservation_expired"
    )


async def test_release_frees_the_keys_and_is_idempotent(api: Api) -> None:
    who = await _seller(api, KEYS[:2])
    rid = (await _reserve(api, who, (PRODUCT, 2)))["reservation_id"]
    await _call(api, "DELETE", f"{M}/reservation/{rid}", who.merchant, status=204)
    assert await _available(api, who) == 2
    await _call(api, "DELETE", f"{M}/reservation/{rid}", who.merchant, status=204)
    body = {"reservation_id": rid, "g2a_order_id": 3}
    await _call(api, "POST", f"{M}/order", who.merchant, body, status=404, code="not_found")
    await _call(api, "PUT", f"{M}/reservation/{rid}", who.merchant, status=404)


async def test_an_ordered_reservation_cannot_be_released_or_renewed(api: Api) -> None:
    who = await _seller(api, KEYS[:2])
    rid = (await _reserve(api, who, (PRODUCT, 1)))["reservation_id"]
    body = {"reservation_id": rid, "g2a_order_id": 5}
    await _call(api, "POST", f"{M}/order", who.merchant, body)
    await _call(api, "DELETE", f"{M}/reservation/{rid}", who.merchant, status=400)
    await _call(api, "PUT", f"{M}/reservation/{rid}", who.merchant, status=400)
    pool = await _call(api, "GET", f"/key-pools/{who.pool}", who.headers)
    assert (pool["availableKeys"], pool["deliveredKeys"]) == (1, 1)


async def test_release_racing_an_order_never_both_delivers_and_frees(api: Api) -> None:
    who = await _seller(api, KEYS[:2])
    rid = (await _reserve(api, who, (PRODUCT, 2)))["reservation_id"]
    order, release = await asyncio.gather(
        api.client.post(
            f"{M}/order", json={"reservation_id": rid, "g2a_order_id": 9}, headers=who.merchant
        ),
        api.client.delete(f"{M}/reservation/{rid}", headers=who.merchant),
    )
    pool = await _call(api, "GET", f"/key-pools/{who.pool}", who.headers)
    counts = (pool["availableKeys"], pool["deliveredKeys"])
    if order.status == 200:
        assert (release.status, counts) == (400, (0, 2))
    else:
        assert (order.status, release.status, counts) == (404, 204, (2, 0))


async def test_unknown_ids_are_404_and_bad_ids_400(api: Api) -> None:
    who = await _seller(api, KEYS[:2])
    unknown = "0190a0b0-0000-7000-8000-00000000abcd"
    await _call(api, "PUT", f"{M}/reservation/{unknown}", who.merchant, status=404)
    await _call(api, "DELETE", f"{M}/reservation/{unknown}", who.merchant, status=404)
    await _call(api, "PUT", f"{M}/reservation/{'x' * 37}", who.merchant, status=400)
    body = {"reservation_id": unknown, "g2a_order_id": 1}
    await _call(api, "POST", f"{M}/order", who.merchant, body, status=404)
    await _call(api, "POST", f"{M}/order", who.merchant, {"reservation_id": ""}, status=400)
    await _call(api, "GET", f"{M}/order/{unknown}/inventory", who.merchant, status=404)
    rid = (await _reserve(api, who, (PRODUCT, 1)))["reservation_id"]
    await _call(api, "GET", f"{M}/order/{rid}/inventory", who.merchant, status=404)
    await _call(api, "POST", f"{M}/order", who.merchant, {"reservation_id": rid, "g2a_order_id": 2})
    path = f"{M}/order/{rid}/inventory"
    await _call(api, "DELETE", path, who.merchant, status=400)
    await _call(api, "DELETE", path, who.merchant, status=400, params={"id[]": "nope"})
    await _call(api, "DELETE", path, who.merchant, status=404, params={"id[]": unknown})


async def test_a_seller_never_sees_another_sellers_reservation_or_order(api: Api) -> None:
    mine, theirs = await _seller(api, KEYS[:2]), await _seller(api, KEYS[2:4], OTHER_PRODUCT)
    rid = (await _reserve(api, mine, (PRODUCT, 1)))["reservation_id"]
    await _call(api, "PUT", f"{M}/reservation/{rid}", theirs.merchant, status=404)
    await _call(api, "DELETE", f"{M}/reservation/{rid}", theirs.merchant, status=404)
    body = {"reservation_id": rid, "g2a_order_id": 11}
    await _call(api, "POST", f"{M}/order", theirs.merchant, body, status=404)
    await _call(api, "POST", f"{M}/order", mine.merchant, body)
    await _call(api, "GET", f"{M}/order/{rid}/inventory", theirs.merchant, status=404)
    await _call(api, "GET", f"{M}/order/11/inventory", theirs.merchant, status=404)


MERCHANT_OPERATIONS = [
    ("POST", "/reservation"),
    ("PUT", "/reservation/x"),
    ("DELETE", "/reservation/x"),
    ("POST", "/order"),
    ("GET", "/order/x/inventory"),
    ("DELETE", "/order/x/inventory"),
    ("POST", "/notifications"),
    ("GET", "/healthcheck"),
]


async def test_every_operation_is_401_without_a_merchant_token(api: Api) -> None:
    who = await _seller(api, KEYS[:1])
    buyer = await api.token(Role.BUYER)
    for headers in ({}, who.headers, buyer, {"Authorization": "Bearer nope"}):
        plain = {k: v for k, v in headers.items() if k == "Authorization"}
        for method, path in MERCHANT_OPERATIONS:
            await _call(api, method, M + path, plain, [], status=401, code="unauthenticated")


async def test_a_merchant_token_opens_nothing_outside_the_merchant_api(api: Api) -> None:
    who = await _seller(api, KEYS[:1])
    for method, path in [
        ("GET", "/key-pools"),
        ("GET", "/seller/offers"),
        ("GET", "/orders"),
        ("GET", f"/offers/{who.offer}"),
    ]:
        await _call(api, method, path, who.merchant, status=401, code="unauthenticated")


async def test_token_accepts_query_or_form_and_refuses_bad_credentials(api: Api) -> None:
    who = await _seller(api, KEYS[:1])
    good = {
        "grant_type": "client_credentials",
        "client_id": who.client_id,
        "client_secret": who.client_secret,
    }
    form = await api.client.post(f"{M}/oauth/token", data=good)
    assert form.status == 200
    by_query = await api.client.post(f"{M}/oauth/token", params=good)
    assert by_query.status == 200
    for bad in (
        {**good, "client_secret": "wrong"},
        {**good, "client_id": "unknown"},
        {k: v for k, v in good.items() if k != "client_secret"},
    ):
        response = await api.client.get(f"{M}/oauth/token", params=bad)
        assert response.status == 401
        assert (await response.json())["code"] == "unauthenticated"
    grant = await api.client.get(f"{M}/oauth/token", params={**good, "grant_type": "password"})
    assert grant.status == 400


async def test_revoked_credentials_lose_their_tokens(api: Api) -> None:
    who = await _seller(api, KEYS[:1])
    await _call(api, "GET", f"{M}/healthcheck", who.merchant, status=204)
    assert await api.container.merchant().revoke_credentials(who.client_id)
    await _call(api, "GET", f"{M}/healthcheck", who.merchant, status=401)
    query = {
        "grant_type": "client_credentials",
        "client_id": who.client_id,
        "client_secret": who.client_secret,
    }
    response = await api.client.get(f"{M}/oauth/token", params=query)
    assert response.status == 401


async def test_tokens_expire(api: Api, clock: FakeClock) -> None:
    who = await _seller(api, KEYS[:1])
    clock.advance(3600)
    await _call(api, "GET", f"{M}/healthcheck", who.merchant, status=401)


async def test_notifications_are_kept_and_deactivate_the_linked_offer(api: Api) -> None:
    who = await _seller(api, KEYS[:1])
    link = await _call(
        api, "PUT", f"/offers/{who.offer}/g2a-offer", who.headers, {"g2aOfferId": "off-77"}
    )
    assert link["g2aOfferId"] == "off-77"
    note = {
        "notification_type": "auction_deactivated",
        "date": "2026-01-01T12:00:00+00:00",
        "data": {"message": "stock ran out", "auction_id": 123, "offer_id": "off-77"},
    }
    await _call(api, "POST", f"{M}/notifications", who.merchant, [note], status=204)
    offer = await _call(api, "GET", f"/offers/{who.offer}", who.headers)
    assert offer["status"] == "inactive"
    seen = await _call(api, "GET", "/seller/g2a/notifications", who.headers)
    assert [(n["type"], n["auctionId"], n["g2aOfferId"]) for n in seen["items"]] == [
        ("auction_deactivated", 123, "off-77")
    ]
    await _call(api, "POST", f"{M}/notifications", who.merchant, {"x": 1}, status=400)


async def test_healthcheck_answers_204(api: Api) -> None:
    who = await _seller(api, KEYS[:1])
    response = await api.client.get(f"{M}/healthcheck", headers=who.merchant)
    assert response.status == 204


async def test_product_id_is_14_digits_and_unique_among_a_sellers_active_offers(api: Api) -> None:
    who = await _seller(api, KEYS[:1])
    draft = {
        "title": "Game",
        "price": {"amount": "1.00", "currency": "EUR"},
        "deliveryType": "AUTO_KEY",
        "keyPoolId": who.pool,
    }
    for bad in ("1234", "0" + PRODUCT[1:], PRODUCT + "1", "1000006886500x"):
        await _call(
            api, "POST", "/offers/draft", who.headers, {**draft, "g2aProductId": bad}, status=400
        )
    twin = await _call(
        api, "POST", "/offers/draft", who.headers, {**draft, "g2aProductId": PRODUCT}, status=201
    )
    await _call(
        api,
        "POST",
        "/offers/publish",
        who.headers,
        {"offerId": twin["id"]},
        status=409,
        code="duplicate",
    )
    other = await _seller(api, KEYS[1:2])  # another seller may sell the same product
    assert other.offer != who.offer


async def test_g2a_channel_transitions_are_counted(api: Api) -> None:
    who = await _seller(api, KEYS[:3])
    kept = (await _reserve(api, who, (PRODUCT, 1)))["reservation_id"]
    dropped = (await _reserve(api, who, (PRODUCT, 1)))["reservation_id"]
    await _call(
        api, "POST", f"{M}/order", who.merchant, {"reservation_id": kept, "g2a_order_id": 1}
    )
    await _call(api, "DELETE", f"{M}/reservation/{dropped}", who.merchant, status=204)
    await _call(api, "DELETE", f"{M}/reservation/{dropped}", who.merchant, status=204)
    text = await (await api.metrics.get("/metrics")).text()
    for transition, value in (("created", 2), ("fulfilled", 1), ("canceled", 1)):
        assert f'autokey_g2a_order_transitions_total{{transition="{transition}"}} {value}.0' in text


async def test_secrets_and_keys_never_reach_the_logs(api: Api) -> None:
    async with captured_logs() as logs:
        who = await _seller(api, KEYS[:2])
        rid = (await _reserve(api, who, (PRODUCT, 2)))["reservation_id"]
        body = {"reservation_id": rid, "g2a_order_id": 77}
        order = await _call(api, "POST", f"{M}/order", who.merchant, body)
        await _call(api, "GET", f"{M}/order/77/inventory", who.merchant)
        await _call(api, "POST", f"{M}/order", who.merchant, body, status=409)
    lines = logs.getvalue().splitlines()
    assert any("/g2a/merchant/order" in line for line in lines)
    values = [i["value"] for s in order["stock"] for i in s["inventory"]]
    token = who.merchant["Authorization"].removeprefix("Bearer ")
    for secret in (who.client_secret, token, *values):
        assert all(secret not in line for line in lines)
    assert all(json.loads(line) for line in lines)  # one JSON object per line


async def test_reservations_show_in_the_sellers_sales(api: Api) -> None:
    who, other = await _seller(api, KEYS[:4]), await _seller(api, KEYS[4:6], OTHER_PRODUCT)
    ordered = (await _reserve(api, who, (PRODUCT, 2)))["reservation_id"]
    released = (await _reserve(api, who, (PRODUCT, 1)))["reservation_id"]
    held = (await _reserve(api, who, (PRODUCT, 1)))["reservation_id"]
    await _reserve(api, other, (OTHER_PRODUCT, 1))
    body = {"reservation_id": ordered, "g2a_order_id": 31}
    await _call(api, "POST", f"{M}/order", who.merchant, body)
    await _call(api, "DELETE", f"{M}/reservation/{released}", who.merchant, status=204)
    first = await _call(api, "GET", "/seller/g2a/reservations?limit=2", who.headers)
    rest = await _call(
        api, "GET", f"/seller/g2a/reservations?cursor={first['nextCursor']}", who.headers
    )
    assert rest["nextCursor"] is None
    seen = [(r["id"], r["state"], r["g2aOrderId"]) for r in first["items"] + rest["items"]]
    assert seen == [(ordered, "ordered", 31), (released, "released", None), (held, "open", None)]
    assert [line["quantity"] for line in first["items"][0]["lines"]] == [2]
    assert first["items"][0]["lines"][0]["productId"] == PRODUCT
