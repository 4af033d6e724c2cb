"""Rate limits over HTTP with the per-process (memory) storage: per principal for uploads,
order creation and token-authenticated writes; per client address for failed logins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.auth import Role
from autokey.entrypoints.settings import SettingsError, load_settings
from tests.http import Api, assert_limited, running_api

LIMITS = {
    "AUTOKEY_RATE_LIMIT_UPLOADS": "2/minute",
    "AUTOKEY_RATE_LIMIT_ORDERS": "2/minute",
    "AUTOKEY_RATE_LIMIT_WRITES": "12/minute",
    "AUTOKEY_RATE_LIMIT_AUTH_FAILURES": "3/minute",
}


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_api(MemoryStore(), environ=LIMITS) as running:
        yield running


async def test_order_creation_is_limited_per_buyer(api: Api) -> None:
    seller, buyer, other = [await api.token(r) for r in (Role.SELLER, Role.BUYER, Role.BUYER)]
    _, offer = await api.stocked_offer(seller, [f"KEY-{i}" for i in range(5)])

    def create(who: dict[str, str]) -> Any:
        return api.client.post("/orders", json={"offerId": offer}, headers=who)

    assert [(await create(buyer)).status for _ in range(2)] == [201, 201]
    await assert_limited(await create(buyer), "orders")
    assert (await create(other)).status == 201  # another principal has its own allowance
    assert (await api.client.get("/orders", headers=buyer)).status == 200  # reads are free


async def test_uploads_are_limited_per_seller(api: Api) -> None:
    seller = await api.token(Role.SELLER)
    pool = (await (await api.client.post("/key-pools", json={}, headers=seller)).json())["id"]

    def upload(n: int) -> Any:
        url = f"/key-pools/{pool}/keys/upload"
        return api.client.post(url, json={"keys": [f"UP-{n}"]}, headers=seller)

    assert [(await upload(n)).status for n in range(2)] == [200, 200]
    await assert_limited(await upload(3), "uploads")


async def test_token_authenticated_writes_are_limited_per_principal(api: Api) -> None:
    seller = await api.token(Role.SELLER)
    statuses = [
        (await api.client.post("/key-pools", json={}, headers=seller)).status for _ in range(12)
    ]
    assert statuses == [201] * 12
    await assert_limited(await api.client.post("/key-pools", json={}, headers=seller), "writes")
    assert (await api.client.get("/key-pools", headers=seller)).status == 200


async def test_failed_authentication_is_limited_per_address_even_for_a_valid_token(
    api: Api,
) -> None:
    seller = await api.token(Role.SELLER)
    wrong = {"Authorization": "Bearer not-a-token"}
    statuses = [(await api.client.get("/key-pools", headers=wrong)).status for _ in range(3)]
    assert statuses == [401, 401, 401]
    await assert_limited(await api.client.get("/key-pools", headers=wrong), "auth_failures")
    # The address is refused before any token is looked at, so guessing cannot go on.
    await assert_limited(await api.client.get("/key-pools", headers=seller), "auth_failures")


def test_limits_are_settable_and_can_be_switched_off() -> None:
    settings = load_settings(
        {"AUTOKEY_RATE_LIMIT_ORDERS": "5/second", "AUTOKEY_RATE_LIMIT_UPLOADS": "off"}
    )
    assert (settings.rate_limits.orders, settings.rate_limits.uploads) == ("5/second", None)
    with pytest.raises(SettingsError) as caught:
        load_settings({"AUTOKEY_RATE_LIMIT_WRITES": "lots", "AUTOKEY_RATE_LIMIT_ORDERS": "0/hour"})
    assert len(caught.value.problems) == 2
    assert all("must look like 10/minute" in p for p in caught.value.problems)
