"""Opening what the container needs: the store and the master keys."""

from __future__ import annotations

import os

import structlog

from autokey.adapters.crypto import load_or_create_key_file
from autokey.adapters.memory.store import MemoryStore
from autokey.entrypoints.settings import Settings, StoreKind
from autokey.ports.store import Store

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
