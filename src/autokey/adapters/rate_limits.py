"""Rate limits over the `limits` package: a moving window per (limit, caller), counted in
Redis when one is configured (shared by every process), in this process otherwise."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import limits
import structlog
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis

from autokey.domain.model.errors import RateLimited
from autokey.domain.model.limits import Limit
from autokey.ports.rate_limits import RateLimiter

log = structlog.get_logger("autokey.rate_limits")


class _Counter:
    def __init__(self, storage: Storage) -> None:
        self._strategy = MovingWindowRateLimiter(storage)

    async def enforce(
        self, item: limits.RateLimitItem, limit: Limit, who: str, spend: bool
    ) -> None:
        act = self._strategy.hit if spend else self._strategy.test
        if await act(item, limit.value, who):
            return
        stats = await self._strategy.get_window_stats(item, limit.value, who)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(limit=limit.value, retry_after_s=wait)


class LimitsRateLimiter(RateLimiter):
    """`allowances` maps each limited Limit to a `limits` string such as "60/minute"; a
    Limit absent from it is unlimited. With `redis`, counts are shared through it (keys
    prefixed by `key_prefix`); when Redis fails, this process counts alone until it is back."""

    def __init__(
        self,
        allowances: Mapping[Limit, str],
        *,
        redis: Redis | None = None,
        key_prefix: str = "autokey:limits",
    ) -> None:
        self._items = {limit: limits.parse(text) for limit, text in allowances.items()}
        self._local = _Counter(MemoryStorage())
        self._shared = None
        if redis is not None:
            # The already-open client's pool: its short socket timeouts bound every call.
            options: dict[str, Any] = {"connection_pool": redis.connection_pool}
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                **options,
            )
            self._shared = _Counter(storage)

    async def spend(self, limit: Limit, who: str) -> None:
        await self._enforce(limit, who, spend=True)

    async def check(self, limit: Limit, who: str) -> None:
        await self._enforce(limit, who, spend=False)

    async def _enforce(self, limit: Limit, who: str, *, spend: bool) -> None:
        item = self._items.get(limit)
        if item is None:
            return
        if self._shared is not None:
            try:
                await self._shared.enforce(item, limit, who, spend)
            except StorageError as exc:
                log.warning(
                    "rate_limits.shared_storage_failed", error=type(exc.storage_error).__name__
                )
            else:
                return
        await self._local.enforce(item, limit, who, spend)
