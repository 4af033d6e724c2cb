"""Hostile or broken input through the real aiohttp app: always a 4xx problem, never a 500
(an unhandled error) or a 503 (a database refusing what the edge let through)."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import attrs
import pytest

from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.auth import Role
from autokey.domain.model.ids import SubjectId
from autokey.domain.model.offers import Money
from autokey.domain.model.webhooks import webhook_signature
from autokey.ports.store import Store
from tests import builders as b
from tests.http import Api, documented_operations, running_api

SECRET = "hostile-input-webhook-secret"
WEBHOOK = ("POST", "/webhooks/g2a")
JSON_ROUTES = sorted(
    {key for key, op in documented_operations().items() if op.request and not op.text_upload}
    | {WEBHOOK}
)
DEEP = b"[" * 100_000 + b"]" * 100_000
HOSTILE_TEXT = [
    pytest.param("\ud800", "unpaired_surrogate", id="surrogate"),
    pytest.param("a\x00b", "control_character", id="nul"),
    pytest.param("tab\there", "control_character", id="tab"),
    pytest.param("ansi\x1b[2J", "control_character", id="escape"),
    pytest.param("exe.\u202etxt", "bidi_control", id="override"),
    pytest.param("isolate\u2067x\u2069", "bidi_control", id="isolate"),
]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_api(MemoryStore(), environ={"G2A_API_HASH": SECRET}) as running:
        yield running


def _concrete(path: str) -> str:
    """Any well-formed id will do: every JSON handler reads its body before any lookup."""
    parts = path.split("/")
    return "/".join(str(uuid.uuid4()) if p.startswith("{") else p for p in parts)


def _signed(body: bytes, nonce: str) -> dict[str, str]:
    ts = str(int(time.time()))
    return {
        "X-G2A-Timestamp": ts,
        "X-G2A-Nonce": nonce,
        "X-G2A-Signature": webhook_signature(SECRET.encode(), body, ts, nonce),
    }


async def _raw(api: Api, head: bytes, body: bytes = b"") -> tuple[int, bytes, Any]:
    """One request written byte for byte on a fresh connection: (status, headers, problem)."""
    port = api.client.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    headers, _, payload = answer.partition(b"\r\n\r\n")
    body = json.loads(payload) if b"json" in headers else payload.decode(errors="replace")
    return int(headers.split(b" ", 2)[1]), headers, body


def _inflated(body: bytes) -> bytes:
    """What the server reads from a zlib or gzip body (as far as it decodes): the signed bytes."""
    try:
        return zlib.decompressobj(zlib.MAX_WBITS | 32).decompress(body)
    except zlib.error:
        return body


async def _seller_header(api: Api) -> bytes:
    token = await api.token(Role.SELLER)
    return b"Authorization: " + token["Authorization"].encode() + b"\r\n"


def test_the_json_routes_are_all_listed() -> None:
    paths = {path for _, path in JSON_ROUTES}
    assert {"/key-pools", "/offers/draft", "/orders", "/webhooks/g2a"} <= paths
    assert len(JSON_ROUTES) >= 6


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES, ids=lambda v: str(v))
async def test_deeply_nested_json_is_a_400_on_every_json_route(
    api: Api, method: str, path: str
) -> None:
    headers = {**(await api.token(Role.SELLER)), "Content-Type": "application/json"}
    if (method, path) == WEBHOOK:
        headers |= _signed(DEEP, "deep-1")
    response = await api.client.request(method, _concrete(path), data=DEEP, headers=headers)
    problem = await response.json(content_type="application/problem+json")
    assert response.status == 400, problem
    if (method, path) == WEBHOOK:
        assert problem["code"] == "malformed_event"
    else:
        assert problem["errors"] == [{"field": "body", "code": "too_deeply_nested"}]


DOCUMENT = b'{"name": "pool"}'
BAD_BLOCK = zlib.compress(DOCUMENT)[:2] + b"\xff" * 16  # a zlib header, then no valid block


@pytest.mark.parametrize(
    ("encoding", "body", "code"),
    [
        pytest.param(b"deflate", BAD_BLOCK, "unreadable_body", id="deflate-bad-block"),
        pytest.param(b"gzip", BAD_BLOCK, "unreadable_body", id="gzip-bad-header"),
        pytest.param(b"gzip", gzip.compress(DOCUMENT)[:-12], "unreadable_body", id="gzip-cut"),
        pytest.param(b"gzip", gzip.compress(DOCUMENT)[:-8], "unreadable_body", id="gzip-trailer"),
        pytest.param(b"deflate", zlib.compress(DOCUMENT)[:-6], "unreadable_body", id="deflate-cut"),
    ],
)
@pytest.mark.parametrize(("method", "path"), JSON_ROUTES, ids=lambda v: str(v))
async def test_a_corrupt_compressed_body_is_a_400_on_every_json_route(
    api: Api, method: str, path: str, encoding: bytes, body: bytes, code: str
) -> None:
    head = (
        f"{method} {_concrete(path)} HTTP/1.1\r\nHost: test\r\n".encode()
        + await _seller_header(api)
        + b"Content-Type: application/json\r\nContent-Encoding: "
        + encoding
        + b"\r\n"
    )
    if (method, path) == WEBHOOK:  # signed over the bytes as sent
        signed = _signed(_inflated(body), "n-corrupt")
        head += "".join(f"{k}: {v}\r\n" for k, v in signed.items()).encode()
    status, headers, problem = await _raw(api, head, body)
    assert status == 400, (headers, problem)
    assert b"application/problem+json" in headers
    assert problem["code"] == code, problem


@pytest.mark.parametrize(
    "value", [b"Bearer \xff\xfe", b"Bearer ak_\xc3\x28", b"\xff", b"Bearer \x80abc"]
)
@pytest.mark.parametrize("route", [b"GET /key-pools", b"POST /orders"])
async def test_a_non_utf8_authorization_header_is_a_401(
    api: Api, value: bytes, route: bytes
) -> None:
    head = route + b" HTTP/1.1\r\nHost: test\r\nAuthorization: " + value + b"\r\n"
    status, headers, problem = await _raw(api, head, b"{}")
    assert (status, problem["code"]) == (401, "unauthenticated"), problem
    assert b"WWW-Authenticate: Bearer" in headers


async def _new_pool(api: Api, seller: dict[str, str]) -> str:
    response = await api.client.post("/key-pools", json={}, headers=seller)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def _problem_codes(response: Any) -> tuple[int, set[str]]:
    problem = await response.json(content_type=None)
    return response.status, {e["code"] for e in problem.get("errors", [])} | {problem["code"]}


@pytest.mark.parametrize(("text", "code"), HOSTILE_TEXT)
async def test_hostile_text_in_names_titles_and_product_ids_is_a_400_on_every_store(
    store: Store, text: str, code: str
) -> None:
    async with running_api(store) as api:
        seller = await api.token(Role.SELLER)
        post = api.client.post
        pool_id = await _new_pool(api, seller)
        draft = {
            "title": "Game",
            "price": {"amount": "9.99", "currency": "EUR"},
            "deliveryType": "G2A",
            "keyPoolId": pool_id,
            "g2aProductId": "10000068865001",
            "maxPrice": {"amount": "12.00", "currency": "EUR"},
        }
        for path, body, field in [
            ("/key-pools", {"name": text}, "name"),
            ("/offers/draft", {**draft, "title": text}, "title"),
            ("/offers/draft", {**draft, "g2aProductId": text}, "g2aProductId"),
        ]:
            raw = json.dumps(body).encode()  # ensure_ascii: a surrogate travels as "\ud800"
            response = await post(
                path, data=raw, headers={**seller, "Content-Type": "application/json"}
            )
            problem = await response.json(content_type=None)
            assert response.status == 400, (path, problem)
            assert problem["errors"] == [{"field": field, "code": code}], problem
        listed = await (await api.client.get("/key-pools", headers=seller)).json()
        assert [p["name"] for p in listed["items"]] == ["Key pool"]


@pytest.mark.parametrize(("text", "code"), HOSTILE_TEXT)
@pytest.mark.parametrize("field", ["event_id", "order_id"])
async def test_hostile_webhook_ids_are_a_400_on_every_store(
    store: Store, text: str, code: str, field: str
) -> None:
    async with running_api(store, environ={"G2A_API_HASH": SECRET}) as api:
        event = {"event_id": "evt-1", "type": "order.paid", "order_id": "G2A-1", field: text}
        body = json.dumps(event).encode()
        headers = {**_signed(body, f"n-{code}-{field}"), "Content-Type": "application/json"}
        response = await api.client.post("/webhooks/g2a", data=body, headers=headers)
        problem = await response.json(content_type=None)
        assert (response.status, problem["code"]) == (400, "malformed_event"), problem
        async with store.transaction() as tx:
            assert await tx.webhooks.get_event("evt-1") is None


@pytest.mark.parametrize(
    ("price", "code"),
    [
        ({"amount": "1e100000", "currency": "EUR"}, "not_a_decimal"),
        ({"amount": "1e1000000", "currency": "EUR"}, "not_a_decimal"),
        ({"amount": "1" * 1_000_001, "currency": "EUR"}, "too_large"),
        ({"amount": "1_000", "currency": "EUR"}, "not_a_decimal"),
        ({"amount": "\u0661\u0660\u0660", "currency": "EUR"}, "not_a_decimal"),
        ({"amount": "9.999", "currency": "EUR"}, "too_many_decimals"),
        ({"amount": "100.5", "currency": "JPY"}, "too_many_decimals"),
        ({"amount": "1.0001", "currency": "KWD"}, "too_many_decimals"),
        ({"amount": "10", "currency": "ZZZ"}, "invalid_currency"),
    ],
    ids=lambda v: v if isinstance(v, str) else f"{v['amount'][:12]} {v['currency']}",
)
async def test_prices_outside_the_rules_are_a_400_on_every_store(
    store: Store, price: dict[str, str], code: str
) -> None:
    async with running_api(store) as api:
        seller = await api.token(Role.SELLER)
        pool_id = await _new_pool(api, seller)
        draft = {"title": "G", "deliveryType": "AUTO_KEY", "keyPoolId": pool_id}
        response = await api.client.post(
            "/offers/draft", json={**draft, "price": price}, headers=seller
        )
        status, codes = await _problem_codes(response)
        assert (status, code in codes) == (400, True), codes
        listed = await (await api.client.get("/seller/offers", headers=seller)).json()
        assert listed["items"] == []


@pytest.mark.parametrize(("amount", "currency"), [("1500", "JPY"), ("2.125", "KWD")])
async def test_prices_in_the_currency_minor_units_are_stored_exactly(
    api: Api, amount: str, currency: str
) -> None:
    seller = await api.token(Role.SELLER)
    pool_id = await _new_pool(api, seller)
    draft = {
        "title": "G",
        "deliveryType": "AUTO_KEY",
        "keyPoolId": pool_id,
        "price": {"amount": amount, "currency": currency},
    }
    response = await api.client.post("/offers/draft", json=draft, headers=seller)
    assert response.status == 201, await response.text()
    assert (await response.json())["price"] == {"amount": amount, "currency": currency}


async def test_order_totals_are_exact_on_the_wire(api: Api) -> None:
    buyer = await api.token(Role.BUYER)
    owner = b.seller()
    pool = b.pool(owner)
    unit = Money(amount=Decimal("12345678901234567890123456.7891"), currency="EUR")
    offer = attrs.evolve(b.offer(owner, pool.id), price=unit)
    order = b.order(offer, SubjectId(uuid.UUID(buyer["X-Subject"])), quantity=3)
    async with api.container.store().transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.orders.add(order)
    response = await api.client.get(f"/orders/{order.id}", headers=buyer)
    body = await response.json()
    assert response.status == 200, body
    assert body["unitPrice"]["amount"] == "12345678901234567890123456.7891"
    assert body["total"] == {"amount": "37037036703703703670370370.3673", "currency": "EUR"}


ARABIC_INDIC = str.maketrans(
    "0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
)


@pytest.mark.parametrize("limit", ["1_0", "\u0661\u0660", " 10", "\uff11", "+5", "10" * 50])
async def test_a_page_size_is_ascii_digits_only(api: Api, limit: str) -> None:
    seller = await api.token(Role.SELLER)
    response = await api.client.get("/key-pools", params={"limit": limit}, headers=seller)
    status, codes = await _problem_codes(response)
    assert (status, "out_of_range" in codes) == (400, True), codes


async def test_ids_written_in_other_digits_name_nothing(api: Api) -> None:
    seller = await api.token(Role.SELLER)
    pool_id, offer_id = await api.stocked_offer(seller, ["AAAAA-11111"])
    assert any(ch.isdigit() for ch in pool_id + offer_id)
    alias_pool, alias_offer = pool_id.translate(ARABIC_INDIC), offer_id.translate(ARABIC_INDIC)
    response = await api.client.get(f"/key-pools/{alias_pool}", headers=seller)
    assert response.status == 404, await response.text()
    response = await api.client.post(
        "/offers/publish", json={"offerId": alias_offer}, headers=seller
    )
    status, codes = await _problem_codes(response)
    assert (status, "invalid_value" in codes or "invalid_type" in codes) == (400, True), codes


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        (b"POST /orders HTTP/1.1\r\nIdempotency-Key: k\xff\xfe\r\n", 400, "invalid_input"),
        (b"POST /webhooks/g2a HTTP/1.1\r\nX-G2A-Nonce: n\xff\r\n", 401, "invalid_signature"),
        (b"POST /webhooks/g2a HTTP/1.1\r\nX-G2A-Timestamp: \xd9\xa1\r\n", 401, "stale_timestamp"),
    ],
    ids=["idempotency-key", "nonce", "timestamp"],
)
async def test_non_utf8_bytes_in_other_headers_are_a_4xx(
    api: Api, head: bytes, status: int, code: str
) -> None:
    buyer = await api.token(Role.BUYER)
    offer = str(uuid.uuid4())
    auth = b"Authorization: " + buyer["Authorization"].encode() + b"\r\n"
    body = json.dumps({"offerId": offer}).encode()
    ts = str(int(time.time())).encode()
    extra = b"Host: test\r\nContent-Type: application/json\r\n" + auth
    if b"webhooks" in head:
        stamp = b"" if b"Timestamp" in head else b"X-G2A-Timestamp: " + ts + b"\r\n"
        nonce = b"" if b"Nonce" in head else b"X-G2A-Nonce: n-1\r\n"
        extra += stamp + nonce + b"X-G2A-Signature: " + b"0" * 64 + b"\r\n"
    answer_status, _, problem = await _raw(api, head + extra, body)
    assert (answer_status, problem["code"]) == (status, code), problem


async def test_after_an_unreadable_body_the_connection_closes_cleanly(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    seller = await api.token(Role.SELLER)
    headers = {**seller, "Content-Type": "application/json", "Content-Encoding": "deflate"}
    response = await api.client.post("/key-pools", data=BAD_BLOCK, headers=headers)
    assert (response.status, response.headers.get("Connection")) == (400, "close")
    # The client's next request must not land on the dead connection, and the server must
    # not have met the broken body a second time (logged as an unhandled exception).
    assert (await api.client.get("/key-pools", headers=seller)).status == 200
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
