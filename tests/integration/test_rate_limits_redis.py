"""Rate limits shared through real Redis by two app instances (as two processes would), and
the per-process fallback when Redis cannot be reached."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from dependency_injector import providers
from redis.asyncio import Redis

from autokey.adapters.memory.store import MemoryStore
from autokey.adapters.rate_limits import LimitsRateLimiter
from autokey.domain.model.auth import Role
from autokey.domain.model.errors import RateLimited
from autokey.domain.model.limits import Limit
from tests.http import assert_limited, running_api
from tests.services import real_redis

pytestmark = pytest.mark.redis


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix unique to the test; its keys are deleted afterwards."""
    prefix = f"autokey-test:{uuid.uuid4().hex}:limits"
    yield prefix
    async with real_redis() as client:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)


async def test_two_processes_share_one_allowance_through_redis(prefix: str) -> None:
    store = MemoryStore()
    async with (
        real_redis() as first_redis,
        real_redis() as second_redis,
        running_api(store) as first,
        running_api(store) as second,
    ):
        for api, redis in ((first, first_redis), (second, second_redis)):
            limiter = LimitsRateLimiter({Limit.ORDERS: "3/minute"}, redis=redis, key_prefix=prefix)
            api.container.rate_limiter.override(providers.Object(limiter))
        seller, buyer = await first.token(Role.SELLER), await first.token(Role.BUYER)
        _, offer = await first.stocked_offer(seller, [f"KEY-{i}" for i in range(5)])
        body = {"offerId": offer}
        statuses = [
            (await api.client.post("/orders", json=body, headers=buyer)).status
            for api in (first, second, first)
        ]
        assert statuses == [201, 201, 201]
        await assert_limited(
            await second.client.post("/orders", json=body, headers=buyer), "orders"
        )
        await assert_limited(await first.client.post("/orders", json=body, headers=buyer), "orders")
        assert [key async for key in first_redis.scan_iter(match=f"{prefix}*")]


async def test_an_unreachable_redis_falls_back_to_a_per_process_count(prefix: str) -> None:
    nowhere = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        limiter = LimitsRateLimiter({Limit.UPLOADS: "2/minute"}, redis=nowhere, key_prefix=prefix)
        await limiter.spend(Limit.UPLOADS, "seller:1")
        await limiter.spend(Limit.UPLOADS, "seller:1")
        with pytest.raises(RateLimited) as caught:
            await limiter.spend(Limit.UPLOADS, "seller:1")
        assert 1 <= caught.value.retry_after_s <= 60
        await limiter.spend(Limit.UPLOADS, "seller:2")
        await limiter.spend(Limit.ORDERS, "seller:1")  # not configured: unlimited
    finally:
        await nowhere.aclose()
