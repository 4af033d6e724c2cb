"""A paid order whose reserved key fails to decrypt, over HTTP (issue 10, section 1): the key
is taken out of sale, replaced from stock or the order canceled with a stable problem, and the
operator gets one log event without key material."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from uuid import UUID

from autokey.adapters.crypto import AesGcmKeyCipher
from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.auth import Role
from autokey.domain.model.ids import OrderId
from autokey.domain.model.keys import Key
from autokey.domain.services.inventory import key_context
from tests.http import Api, captured_logs, running_api

KEYS = ["AAAAA-11111-AAAAA", "BBBBB-22222-BBBBB"]


def _flip_last_bit(sealed: bytes) -> bytes:
    return sealed[:-1] + bytes([sealed[-1] ^ 1])


async def _paid_order_with_a_damaged_key(
    api: Api, stock: list[str], damage: Callable[[Key], bytes] = lambda k: _flip_last_bit(k.sealed)
) -> tuple[dict[str, str], str, str, str]:
    seller, buyer = await api.token(Role.SELLER), await api.token(Role.BUYER)
    pool, offer = await api.stocked_offer(seller, stock)
    order = await (await api.client.post("/orders", json={"offerId": offer}, headers=buyer)).json()
    await api.client.post(f"/orders/{order['id']}/pay", headers=buyer)
    async with api.container.store().transaction() as tx:
        (key,) = await tx.keys.for_order(OrderId(UUID(order["id"])))
        await tx.keyring.reseal_key(key.id, damage(key))
    return buyer, pool, order["id"], str(key.id)


def _events(logs: str, name: str) -> list[dict[str, object]]:
    return [e for e in map(json.loads, logs.splitlines()) if e["event"] == name]


async def test_an_unreadable_key_is_replaced_from_stock_and_the_order_fulfilled() -> None:
    async with running_api(MemoryStore()) as api, captured_logs() as logs:
        buyer, _pool, order, bad = await _paid_order_with_a_damaged_key(api, KEYS)
        response = await api.client.post(f"/orders/{order}/fulfill", headers=buyer)
        body = await response.json()
        assert response.status == 200, body
        assert body["status"] == "FULFILLED"
        assert [k["key"] for k in body["keys"]] == [KEYS[1]]
    (event,) = _events(logs.getvalue(), "orders.key_material_unreadable")
    assert (event["order_id"], event["key_ids"], event["outcome"]) == (order, [bad], "replaced")
    assert not any(k in logs.getvalue() for k in KEYS)


async def test_an_unreadable_key_without_stock_cancels_the_order_with_a_stable_problem() -> None:
    async with running_api(MemoryStore()) as api, captured_logs() as logs:
        buyer, pool, order, bad = await _paid_order_with_a_damaged_key(api, KEYS[:1])
        for attempt in ({}, {"Idempotency-Key": "retry-1"}, {}):
            response = await api.client.post(
                f"/orders/{order}/fulfill", headers={**buyer, **attempt}
            )
            problem = await response.json()
            assert response.status == 409, problem
            assert response.content_type == "application/problem+json"
            assert problem["code"] == "order_keys_unreadable"
        shown = await (await api.client.get(f"/orders/{order}", headers=buyer)).json()
        assert (shown["status"], shown["cancelReason"]) == ("CANCELED", "key_material_unreadable")
        admin = await api.token(Role.ADMIN)
        keys = await (await api.client.get(f"/key-pools/{pool}/keys", headers=admin)).json()
        assert [(k["id"], k["status"]) for k in keys["items"]] == [(bad, "INVALID")]
    (event,) = _events(logs.getvalue(), "orders.key_material_unreadable")
    assert (event["key_ids"], event["outcome"], event["level"]) == ([bad], "canceled", "error")
    assert KEYS[0] not in logs.getvalue()


async def test_a_key_sealed_under_a_master_key_this_server_lacks_is_not_set_aside() -> None:
    def sealed_elsewhere(key: Key) -> bytes:
        cipher = AesGcmKeyCipher([os.urandom(32)])
        return cipher.seal(KEYS[0], context=key_context(key.pool_id, key.id))

    async with running_api(MemoryStore()) as api:
        buyer, pool, order, key = await _paid_order_with_a_damaged_key(api, KEYS, sealed_elsewhere)
        response = await api.client.post(f"/orders/{order}/fulfill", headers=buyer)
        problem = await response.json()
        assert response.status == 503, problem
        assert problem["code"] == "master_key_unavailable"
        shown = await (await api.client.get(f"/orders/{order}", headers=buyer)).json()
        assert shown["status"] == "PAID"
        admin = await api.token(Role.ADMIN)
        keys = await (await api.client.get(f"/key-pools/{pool}/keys", headers=admin)).json()
        statuses = {k["id"]: k["status"] for k in keys["items"]}
        assert statuses.pop(key) == "RESERVED"
        assert list(statuses.values()) == ["AVAILABLE"]
