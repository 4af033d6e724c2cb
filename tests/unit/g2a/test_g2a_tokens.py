from __future__ import annotations

from datetime import UTC, datetime, timedelta

from autokey.adapters.memory.token_cache import MemoryTokenCache
from autokey.adapters.redis.token_cache import RedisTokenCache
from autokey.domain.model.marketplace import AccessToken, MarketplaceEnvironment

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENV = MarketplaceEnvironment.SANDBOX


def token(expires_in: int, value: str = "tok-secret") -> AccessToken:
    return AccessToken(value=value, token_type="bearer", expires_in=expires_in, issued_at=T0)


def test_hour_long_tokens_refresh_five_minutes_before_expiry() -> None:
    t = token(3600)
    assert not t.needs_refresh(T0 + timedelta(seconds=3299))
    assert t.needs_refresh(T0 + timedelta(seconds=3301))


def test_sandbox_tokens_refresh_in_the_last_fifth_of_their_life() -> None:
    t = token(300)
    assert t.refresh_margin_s == 60
    assert not t.needs_refresh(T0 + timedelta(seconds=239))
    assert t.needs_refresh(T0 + timedelta(seconds=241))


def test_token_value_never_appears_in_repr() -> None:
    assert "tok-secret" not in repr(token(300))


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_cache_expires_tokens_and_misses_on_rotation() -> None:
    clock = FakeMonotonic()
    cache = MemoryTokenCache(monotonic=clock)
    await cache.put(ENV, token(300), "fp-1")
    assert await cache.get(ENV, "fp-1") == token(300)
    assert await cache.get(ENV, "fp-2") is None
    assert await cache.get(MarketplaceEnvironment.LIVE, "fp-1") is None
    clock.now += 301
    assert await cache.get(ENV, "fp-1") is None


async def test_memory_cache_delete_is_idempotent() -> None:
    cache = MemoryTokenCache()
    await cache.put(ENV, token(300), "fp")
    await cache.delete(ENV)
    await cache.delete(ENV)
    assert await cache.get(ENV, "fp") is None


async def test_memory_refresh_lock_is_exclusive_and_times_out() -> None:
    cache = MemoryTokenCache()
    async with cache.refresh_lock(ENV, ttl_s=1, wait_s=1) as held:
        assert held
        async with cache.refresh_lock(ENV, ttl_s=1, wait_s=0.01) as second:
            assert not second
    async with cache.refresh_lock(ENV, ttl_s=1, wait_s=0) as again:
        assert again


def test_redis_cache_key_follows_the_contract() -> None:
    cache = RedisTokenCache(redis=None, fallback=MemoryTokenCache())  # type: ignore[arg-type]
    assert cache.key_for(MarketplaceEnvironment.SANDBOX) == "g2a:token:sandbox"
    assert cache.key_for(MarketplaceEnvironment.LIVE) == "g2a:token:live"
