"""Opening what the container needs: the store and the master keys."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
import structlog
from redis.asyncio import Redis

from autokey import __version__
from autokey.adapters.crypto import load_or_create_key_file
from autokey.adapters.memory.store import MemoryStore
from autokey.entrypoints.settings import Settings, StoreKind
from autokey.ports.store import RevocationWatch, Store

log = structlog.get_logger("autokey.bootstrap")


async def open_store(settings: Settings) -> Store:
    """Connect to the configured store (not yet migrated)."""
    db = settings.database
    if db.kind is StoreKind.POSTGRES:
        from autokey.adapters.postgres.store import PostgresStore

        return await PostgresStore.open(db.url, min_size=db.pool_min, max_size=db.pool_max)
    if db.kind is StoreKind.SQLITE:
        from autokey.adapters.sqlite.store import SqliteStore

        return await SqliteStore.open(db.sqlite_path)
    return MemoryStore()


@asynccontextmanager
async def revocation_watch(settings: Settings) -> AsyncIterator[RevocationWatch | None]:
    """On PostgreSQL, a listener for announced token revocations (closed on exit), so the
    principal of a bearer token can be cached; elsewhere None (looked up on every call)."""
    if settings.database.kind is not StoreKind.POSTGRES:
        yield None
        return
    from autokey.adapters.postgres.revocations import PostgresRevocationWatch

    watch = PostgresRevocationWatch(settings.database.url)
    await watch.start()
    try:
        yield watch
    finally:
        await watch.close()


def master_keys(settings: Settings) -> tuple[bytes, ...]:
    """The configured master keys; in development, a key file created on first start."""
    crypto = settings.crypto
    if crypto.master_keys:
        return crypto.master_keys
    if crypto.key_file is not None:
        key, created = load_or_create_key_file(crypto.key_file)
        if created:
            log.warning("crypto.dev_key_created", path=str(crypto.key_file), mode="0600")
        return (key,)
    log.warning("crypto.ephemeral_key", reason="memory store: keys vanish on exit anyway")
    return (os.urandom(32),)


@asynccontextmanager
async def outbound(
    settings: Settings,
) -> AsyncIterator[tuple[aiohttp.ClientSession | None, Redis | None]]:
    """The one outbound HTTP session (only when G2A is configured) and the Redis client
    (only when AUTOKEY_REDIS_URL is set), closed on exit."""
    async with AsyncExitStack() as stack:
        session = None
        if settings.g2a is not None:
            session = await stack.enter_async_context(
                aiohttp.ClientSession(headers={"User-Agent": f"autokey/{__version__}"})
            )
        redis = None
        if settings.redis_url:
            # Short timeouts: the token cache sits on every G2A Import call and falls back
            # to the process cache when Redis is slow or down.
            redis = Redis.from_url(
                settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            stack.push_async_callback(redis.aclose)
        yield session, redis
