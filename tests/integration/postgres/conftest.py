"""Stores on scratch PostgreSQL databases for the adapter's own integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from autokey.adapters.postgres.store import PostgresStore
from tests.services import scratch_postgres


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """The URL of a fresh, empty database, dropped afterwards."""
    async with scratch_postgres() as url:
        yield url


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[PostgresStore]:
    """A migrated store with room for 20 concurrent transactions."""
    store = await PostgresStore.open(pg_url, min_size=2, max_size=24)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()
