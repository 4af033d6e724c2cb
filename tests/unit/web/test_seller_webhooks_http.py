"""Seller webhook endpoints over HTTP, on the in-memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.auth import Role
from tests.http import Api, running_api

HOOK = "https://hooks.example.com/autokey"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    production = {"AUTOKEY_ENV": "production", "ENCRYPTION_KEY": "ab" * 32}
    async with running_api(MemoryStore(), environ=production) as running:
        yield running


async def _register(api: Api, who: dict[str, str], body: Any, status: int = 201) -> Any:
    response = await api.client.post("/seller/webhooks", json=body, headers=who)
    payload = await response.json()
    assert response.status == status, payload
    return payload


async def test_the_signing_secret_is_shown_once_and_never_listed(api: Api) -> None:
    seller = await api.token()
    made = await _register(api, seller, {"url": HOOK, "eventTypes": ["order.fulfilled"]})
    assert made["secret"].startswith("whsec_")
    assert made["endpoint"]["status"] == "active"
    listed = await api.client.get("/seller/webhooks", headers=seller)
    text = await listed.text()
    assert made["secret"] not in text
    assert made["secret"].removeprefix("whsec_") not in text
    assert [e["id"] for e in (await listed.json())["items"]] == [made["endpoint"]["id"]]
    other = await api.token()
    assert (await (await api.client.get("/seller/webhooks", headers=other)).json())["items"] == []


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (
            {"url": "http://hooks.example.com/", "eventTypes": ["order.fulfilled"]},
            "url",
            "https_required",
        ),
        ({"url": "https://127.0.0.1/", "eventTypes": ["order.fulfilled"]}, "url", "private_target"),
        ({"url": "https://10.0.0.7/", "eventTypes": ["order.fulfilled"]}, "url", "private_target"),
        ({"url": HOOK, "eventTypes": ["order.eaten"]}, "eventTypes", "unknown_event_type"),
        ({"url": HOOK, "eventTypes": []}, "eventTypes", "required"),
    ],
)
async def test_unsafe_or_unknown_registrations_are_refused(
    api: Api, body: dict[str, Any], field: str, code: str
) -> None:
    problem = await _register(api, await api.token(), body, status=400)
    assert problem["errors"] == [{"field": field, "code": code}]


async def test_buyers_cannot_register_and_sellers_cannot_see_each_others_deliveries(
    api: Api,
) -> None:
    buyer, owner, other = await api.token(Role.BUYER), await api.token(), await api.token()
    await _register(api, buyer, {"url": HOOK, "eventTypes": ["order.fulfilled"]}, status=403)
    made = await _register(api, owner, {"url": HOOK, "eventTypes": ["upload.completed"]})
    endpoint = made["endpoint"]["id"]
    mine = await api.client.get(f"/seller/webhooks/{endpoint}/deliveries", headers=owner)
    assert (await mine.json())["items"] == []
    theirs = await api.client.get(f"/seller/webhooks/{endpoint}/deliveries", headers=other)
    assert theirs.status == 404


async def test_an_upload_writes_a_delivery_that_can_be_replayed(api: Api) -> None:
    seller = await api.token()
    made = await _register(api, seller, {"url": HOOK, "eventTypes": ["upload.completed"]})
    endpoint = made["endpoint"]["id"]
    await api.stocked_offer(seller, ["HOOKED-11111", "HOOKED-22222"])
    listed = await api.client.get(f"/seller/webhooks/{endpoint}/deliveries", headers=seller)
    deliveries = (await listed.json())["items"]
    assert [(d["eventType"], d["status"], d["attempts"]) for d in deliveries] == [
        ("upload.completed", "pending", 0)
    ]
    replayed = await api.client.post(
        f"/seller/webhooks/{endpoint}/deliveries/{deliveries[0]['id']}/replay", headers=seller
    )
    assert replayed.status == 200
    assert (await replayed.json())["status"] == "pending"
    missing = await api.client.post(
        f"/seller/webhooks/{endpoint}/deliveries/{made['endpoint']['id']}/replay", headers=seller
    )
    assert missing.status == 404
