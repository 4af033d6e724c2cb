"""`MemoryTokenCache`: the token cache of one process (tests, and Redis's fallback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from autokey.domain.model.marketplace import AccessToken, MarketplaceEnvironment
from autokey.ports.marketplace import TokenCache


class MemoryTokenCache(TokenCache):
    """Tokens in a dict, expiring `expires_in` seconds after `put` (by `monotonic`);
    the refresh lock is an asyncio lock, so it is shared by this process only."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._entries: dict[MarketplaceEnvironment, tuple[AccessToken, str, float]] = {}
        self._locks: dict[MarketplaceEnvironment, asyncio.Lock] = {}

    async def get(self, env: MarketplaceEnvironment, fingerprint: str) -> AccessToken | None:
        entry = self._entries.get(env)
        if entry is None:
            return None
        token, recorded, deadline = entry
        if self._monotonic() >= deadline:
            del self._entries[env]
            return None
        return token if recorded == fingerprint else None

    async def put(self, env: MarketplaceEnvironment, token: AccessToken, fingerprint: str) -> None:
        self._entries[env] = (token, fingerprint, self._monotonic() + token.expires_in)

    async def delete(self, env: MarketplaceEnvironment) -> None:
        self._entries.pop(env, None)

    @asynccontextmanager
    async def refresh_lock(
        self, env: MarketplaceEnvironment, *, ttl_s: float, wait_s: float
    ) -> AsyncIterator[bool]:
        lock = self._locks.setdefault(env, asyncio.Lock())
        if lock.locked():
            try:
                await asyncio.wait_for(lock.acquire(), timeout=max(wait_s, 0.0))
            except TimeoutError:
                yield False
                return
        else:
            await lock.acquire()
        try:
            yield True
        finally:
            lock.release()
