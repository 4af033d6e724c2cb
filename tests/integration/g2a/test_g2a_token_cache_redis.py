"""The Import API token cached in real Redis, its degradation, and cross-process single flight."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from autokey.adapters.g2a.auth import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from autokey.adapters.g2a.metrics import G2AMetrics
from autokey.adapters.g2a.simulator import RunningSimulator
from autokey.adapters.memory.token_cache import MemoryTokenCache
from autokey.adapters.redis.token_cache import RedisTokenCache
from autokey.domain.model.marketplace import AccessToken, MarketplaceEnvironment, TokenSource
from tests.integration.g2a.g2a_it_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    EMAIL,
    ClientFactory,
    redis_url,
)

pytestmark = pytest.mark.redis
ENV = MarketplaceEnvironment.SANDBOX
WORKER = Path(__file__).with_name("token_race_worker.py")


def redis_cache(redis: Redis, prefix: str, metrics: G2AMetrics | None = None) -> RedisTokenCache:
    return RedisTokenCache(
        redis=redis,
        fallback=MemoryTokenCache(),
        key_prefix=prefix,
        on_fallback=metrics.token_cache_fallback if metrics else None,
    )


async def test_token_is_cached_under_the_env_key_with_its_lifetime_as_ttl(
    make_client: ClientFactory,
    redis_client: Redis,
    redis_prefix: str,
    simulator: RunningSimulator,
) -> None:
    client = make_client(cache=redis_cache(redis_client, redis_prefix))
    await client.probe_token()
    key = f"{redis_prefix}sandbox"
    ttl = await redis_client.ttl(key)
    assert 295 <= ttl <= 300
    stored = json.loads(await redis_client.get(key))
    assert stored["expires_in"] == 300
    assert stored["fingerprint"]
    assert stored["access_token"] in simulator.state.tokens
    # A second client (another worker) reuses it.
    other = make_client(cache=redis_cache(redis_client, redis_prefix))
    assert (await other.probe_token()).source is TokenSource.CACHE
    assert simulator.state.token_fetches == 1


async def test_rotated_credentials_miss_the_cached_token(
    make_client: ClientFactory,
    redis_client: Redis,
    redis_prefix: str,
    simulator: RunningSimulator,
) -> None:
    await make_client(cache=redis_cache(redis_client, redis_prefix)).probe_token()
    rotated = make_client(
        cache=redis_cache(redis_client, redis_prefix),
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
    )
    assert (await rotated.probe_token()).source is TokenSource.FETCHED
    assert (await rotated.probe_token()).source is TokenSource.CACHE
    assert simulator.state.token_fetches == 2


async def test_calls_succeed_through_the_fallback_when_redis_is_unreachable(
    make_client: ClientFactory,
    simulator: RunningSimulator,
) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    registry = CollectorRegistry()
    metrics = G2AMetrics(registry)
    client = make_client(cache=redis_cache(dead, "x:", metrics), metrics=metrics)
    with structlog.testing.capture_logs() as logs:
        await client.publish_offer_stock("offer-1", 3)
        await client.publish_offer_stock("offer-1", 4)
        assert (await client.probe_token()).source is TokenSource.CACHE
    await dead.aclose()
    assert simulator.state.offers["offer-1"] == 4
    assert simulator.state.token_fetches == 1
    assert [e["event"] for e in logs].count("g2a.token_cache_fallback") == 1
    fallbacks = registry.get_sample_value("g2a_token_cache_total", {"result": "fallback"})
    assert fallbacks is not None
    assert fallbacks >= 3


async def test_cache_comes_back_after_an_outage(redis_client: Redis, redis_prefix: str) -> None:
    now = [0.0]
    cache = RedisTokenCache(
        redis=redis_client,
        fallback=MemoryTokenCache(),
        key_prefix=redis_prefix,
        retry_redis_after_s=5,
        monotonic=lambda: now[0],
    )
    token = AccessToken(value="v", token_type="bearer", expires_in=60, issued_at=datetime.now(UTC))
    cache._down_until = 5.0  # as after a failed call at t=0
    await cache.put(ENV, token, "fp")
    assert await redis_client.get(f"{redis_prefix}sandbox") is None
    now[0] = 6.0
    await cache.put(ENV, token, "fp")
    assert await cache.get(ENV, "fp") == token
    assert await redis_client.get(f"{redis_prefix}sandbox") is not None


async def test_the_redis_lock_is_exclusive_and_released_by_its_holder(
    redis_client: Redis,
    redis_prefix: str,
) -> None:
    a = redis_cache(redis_client, redis_prefix)
    b = redis_cache(redis_client, redis_prefix)
    async with a.refresh_lock(ENV, ttl_s=5, wait_s=1) as held:
        assert held
        async with b.refresh_lock(ENV, ttl_s=5, wait_s=0.05) as other:
            assert not other
    async with b.refresh_lock(ENV, ttl_s=5, wait_s=0.05) as later:
        assert later
    assert await redis_client.get(f"{redis_prefix}sandbox:lock") is None


async def test_sixteen_callers_in_two_processes_cause_one_token_fetch(
    simulator: RunningSimulator,
    redis_prefix: str,
) -> None:
    start_at = time.time() + 1.5
    args = [
        simulator.url,
        redis_url(),
        redis_prefix,
        CLIENT_ID,
        CLIENT_SECRET,
        EMAIL,
        "8",
        str(start_at),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent), *sys.path])}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [await p.communicate() for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    lines = [ln for out, _ in outputs for ln in out.decode().splitlines()]
    sources = [w for ln in lines if ln.startswith("RESULT ") for w in ln.split()[1:]]
    assert len(sources) == 16
    assert sources.count("fetched") == 1
    assert simulator.state.token_fetches == 1
