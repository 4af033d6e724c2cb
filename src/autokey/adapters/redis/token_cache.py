"""`RedisTokenCache`: the G2A access token shared by every process through Redis.

Key `g2a:token:{env}`, TTL = `expires_in`; the value records a fingerprint of the
credentials, so a token cached under rotated credentials reads as a miss. The refresh lock
is `SET NX PX` on `{key}:lock`, released only by its holder. When Redis cannot be reached,
every operation degrades to the `fallback` cache handed in (a process-local one), logged
once per outage and reported through `on_fallback` each time; Redis errors never escape."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from autokey.domain.model.marketplace import AccessToken, MarketplaceEnvironment
from autokey.ports.marketplace import TokenCache

DEFAULT_KEY_PREFIX = "g2a:token:"
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_LOCK_POLL_S = 0.02
_REDIS_ERRORS = (RedisError, OSError, TimeoutError)

log = structlog.get_logger("autokey.adapters.redis")


def _encode(token: AccessToken, fingerprint: str) -> str:
    return json.dumps(
        {
            "access_token": token.value,
            "token_type": token.token_type,
            "expires_in": token.expires_in,
            "issued_at": token.issued_at.isoformat(),
            "fingerprint": fingerprint,
        }
    )


def _decode(raw: bytes | str) -> tuple[AccessToken, str] | None:
    try:
        data: Any = json.loads(raw)
        token = AccessToken(
            value=str(data["access_token"]),
            token_type=str(data["token_type"]),
            expires_in=int(data["expires_in"]),
            issued_at=datetime.fromisoformat(data["issued_at"]),
        )
        return token, str(data["fingerprint"])
    except (ValueError, TypeError, KeyError):
        return None


class RedisTokenCache(TokenCache):
    def __init__(
        self,
        *,
        redis: Redis,
        fallback: TokenCache,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        retry_redis_after_s: float = 5.0,
        on_fallback: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`redis` should have short socket timeouts: the cache is on every Import API call."""
        self._redis = redis
        self._fallback = fallback
        self._prefix = key_prefix
        self._retry_after_s = retry_redis_after_s
        self._on_fallback = on_fallback
        self._monotonic = monotonic
        self._down_until: float | None = None
        self._outage_logged = False

    def key_for(self, env: MarketplaceEnvironment) -> str:
        return f"{self._prefix}{env.value}"

    # -- degradation -------------------------------------------------------------------------

    def _redis_usable(self) -> bool:
        return self._down_until is None or self._monotonic() >= self._down_until

    def _went_down(self, operation: str, exc: BaseException) -> None:
        self._down_until = self._monotonic() + self._retry_after_s
        if not self._outage_logged:
            self._outage_logged = True
            log.warning("g2a.token_cache_fallback", operation=operation, error=type(exc).__name__)

    def _came_back(self) -> None:
        if self._down_until is not None or self._outage_logged:
            self._down_until = None
            if self._outage_logged:
                self._outage_logged = False
                log.info("g2a.token_cache_recovered")

    def _served_by_fallback(self) -> None:
        if self._on_fallback is not None:
            self._on_fallback()

    # -- TokenCache --------------------------------------------------------------------------

    async def get(self, env: MarketplaceEnvironment, fingerprint: str) -> AccessToken | None:
        if self._redis_usable():
            try:
                raw = await self._redis.get(self.key_for(env))
            except _REDIS_ERRORS as exc:
                self._went_down("get", exc)
            else:
                self._came_back()
                decoded = _decode(raw) if raw is not None else None
                if decoded is None or decoded[1] != fingerprint:
                    return None
                return decoded[0]
        self._served_by_fallback()
        return await self._fallback.get(env, fingerprint)

    async def put(self, env: MarketplaceEnvironment, token: AccessToken, fingerprint: str) -> None:
        # Written through to the fallback, so an outage does not cost a token fetch.
        await self._fallback.put(env, token, fingerprint)
        if self._redis_usable():
            try:
                await self._redis.set(
                    self.key_for(env), _encode(token, fingerprint), ex=max(1, token.expires_in)
                )
            except _REDIS_ERRORS as exc:
                self._went_down("put", exc)
            else:
                self._came_back()
                return
        self._served_by_fallback()

    async def delete(self, env: MarketplaceEnvironment) -> None:
        await self._fallback.delete(env)
        if self._redis_usable():
            try:
                await self._redis.delete(self.key_for(env))
            except _REDIS_ERRORS as exc:
                self._went_down("delete", exc)
            else:
                self._came_back()

    @asynccontextmanager
    async def refresh_lock(
        self, env: MarketplaceEnvironment, *, ttl_s: float, wait_s: float
    ) -> AsyncIterator[bool]:
        lock_key = f"{self.key_for(env)}:lock"
        owner = uuid.uuid4().hex
        held: bool | None = None
        if self._redis_usable():
            held = await self._acquire(lock_key, owner, ttl_s=ttl_s, wait_s=wait_s)
        if held is None:
            self._served_by_fallback()
            async with self._fallback.refresh_lock(env, ttl_s=ttl_s, wait_s=wait_s) as local:
                yield local
            return
        try:
            yield held
        finally:
            if held:
                await self._release(lock_key, owner)

    async def _acquire(
        self, lock_key: str, owner: str, *, ttl_s: float, wait_s: float
    ) -> bool | None:
        """True when held, False when the wait ran out, None when Redis is unreachable."""
        deadline = self._monotonic() + max(wait_s, 0.0)
        ttl_ms = max(1, int(ttl_s * 1000))
        while True:
            try:
                acquired = await self._redis.set(lock_key, owner, nx=True, px=ttl_ms)
            except _REDIS_ERRORS as exc:
                self._went_down("lock", exc)
                return None
            self._came_back()
            if acquired:
                return True
            if self._monotonic() >= deadline:
                return False
            await asyncio.sleep(_LOCK_POLL_S)

    async def _release(self, lock_key: str, owner: str) -> None:
        try:
            await self._redis.eval(_RELEASE_SCRIPT, 1, lock_key, owner)
        except _REDIS_ERRORS as exc:
            self._went_down("unlock", exc)
