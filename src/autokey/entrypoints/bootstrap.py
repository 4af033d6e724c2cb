"""Opening what the container needs: the store and the master keys, and the checks that
refuse to start with one clear line (`StartupRefused`) instead of a traceback."""

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
from autokey.domain.model.errors import KeyringMismatch, KeyringProblem, StoreUnavailable
from autokey.entrypoints.container import Container
from autokey.entrypoints.settings import Settings, StoreKind
from autokey.ports.store import RevocationWatch, Store

log = structlog.get_logger("autokey.bootstrap")

EXIT_CONFIG = 2
"""The configuration (environment or flags) is invalid."""
EXIT_DATABASE = 3
"""The database is missing, unreachable or not migrated, or the master keys do not fit it."""
EXIT_ADDRESS_IN_USE = 4
"""`serve` cannot listen: the address is taken."""


class StartupRefused(Exception):
    """autokey cannot start: `message` is the one line shown, `exit_code` the status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


def auto_migrates(settings: Settings) -> bool:
    """Whether `serve` migrates the store itself: always on the embedded SQLite default, and
    on PostgreSQL outside production (where `autokey migrate` is an explicit step)."""
    return settings.database.kind is not StoreKind.POSTGRES or not settings.production


async def provision(settings: Settings) -> None:
    """In development, create a missing PostgreSQL database when the role may. Elsewhere a
    missing database is refused with one line naming it."""
    if settings.database.kind is not StoreKind.POSTGRES:
        return
    from autokey.adapters.postgres import provision as pg

    dsn, where = settings.database.url, settings.database.describe()
    if await pg.database_state(dsn) is not pg.DatabaseState.MISSING:
        return  # it exists, or the server is unreachable: opening says which
    name = pg.database_name(dsn)
    if settings.production:
        raise StartupRefused(
            f"database {name!r} does not exist ({where}); create it, then run `autokey migrate`",
            EXIT_DATABASE,
        )
    if not await pg.create_database(dsn) and (
        await pg.database_state(dsn) is not pg.DatabaseState.EXISTS
    ):
        raise StartupRefused(
            f"database {name!r} does not exist ({where}) and this role may not create it",
            EXIT_DATABASE,
        )
    log.info("db.created", database=name)


async def open_ready_store(settings: Settings, *, create: bool, migrate: bool = False) -> Store:
    """Open the configured store ready to serve: provisioned and migrated where autokey does
    that itself (or when `migrate` asks), and checked to be at the schema this code ships.
    With `create` False an embedded SQLite file that does not exist yet is refused rather
    than made empty."""
    db = settings.database
    if not create and db.kind is StoreKind.SQLITE and not db.sqlite_path.exists():
        raise StartupRefused(
            f"no database at {db.sqlite_path.resolve()}; run this where `autokey serve` runs, "
            "or set AUTOKEY_DATABASE_URL",
            EXIT_DATABASE,
        )
    if create:
        await provision(settings)
    try:
        store = await open_store(settings)
    except StoreUnavailable:
        raise StartupRefused(
            f"cannot reach the database ({db.describe()})", EXIT_DATABASE
        ) from None
    try:
        if migrate or (create and auto_migrates(settings)):
            applied = await store.migrate()
            log.info("db.migrated", applied=list(applied), version=await store.schema_version())
        if (version := await store.schema_version()) < store.shipped_schema_version:
            raise StartupRefused(
                f"the database schema is at version {version}, this autokey needs "
                f"{store.shipped_schema_version}: run `autokey migrate`",
                EXIT_DATABASE,
            )
    except BaseException:
        await store.close()
        raise
    return store


async def open_store(settings: Settings) -> Store:
    """Connect to the configured store (not yet migrated)."""
    db = settings.database
    if db.kind is StoreKind.POSTGRES:
        from autokey.adapters.postgres.store import PostgresStore

        return await PostgresStore.open(
            db.url,
            min_size=db.pool_min,
            max_size=db.pool_max,
            timeout_s=db.pool_timeout_s,
            connect_timeout_s=db.connect_timeout_s,
            statement_timeout_ms=db.statement_timeout_ms,
            tcp_user_timeout_ms=db.tcp_user_timeout_ms,
        )
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


KEYRING_SCHEMA = 4
"""The migration (0004, both engines) that lets a store say which keys its rows need."""


async def unlock(container: Container) -> None:
    """The startup check every entry point runs before serving (ADR 0011): KeyringMismatch
    when the configured master keys cannot open what the store holds, or the schema predates
    the migration that records it. Then wires the blind index under the store's pinned key."""
    store = container.store()
    if store.name != MemoryStore.name and await store.schema_version() < KEYRING_SCHEMA:
        raise KeyringMismatch(
            problem=KeyringProblem.SCHEMA_OUTDATED, configured=tuple(container.cipher().key_ids)
        )
    container.blind_index.override(await container.keyring().unlock())


@asynccontextmanager
async def opened(
    settings: Settings, *, create: bool = False, migrate: bool = False
) -> AsyncIterator[Container]:
    """The ready store (`open_ready_store`) behind an unlocked container, for CLI commands;
    closed on exit."""
    store = await open_ready_store(settings, create=create, migrate=migrate)
    try:
        container = Container(settings=settings, store=store, master_keys=master_keys(settings))
        await unlock(container)
        yield container
    finally:
        await store.close()


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
