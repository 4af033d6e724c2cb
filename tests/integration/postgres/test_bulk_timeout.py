"""A bulk load outlives the statement timeout that bounds every other transaction."""

from __future__ import annotations

import psycopg
import pytest

from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.errors import StoreUnavailable

SLOW = "SELECT pg_sleep(0.5)"


async def test_a_bulk_transaction_is_not_cut_by_the_statement_timeout(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url, max_size=1, statement_timeout_ms=200)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            async with store.transaction() as tx:
                await tx.keys._conn.execute(SLOW)  # type: ignore[attr-defined]
        assert isinstance(caught.value.__cause__, psycopg.errors.QueryCanceled)
        async with store.bulk_transaction() as tx:
            await tx.keys._conn.execute(SLOW)  # type: ignore[attr-defined]
        with pytest.raises(StoreUnavailable):  # the same connection is bounded again
            async with store.transaction() as tx:
                await tx.keys._conn.execute(SLOW)  # type: ignore[attr-defined]
    finally:
        await store.close()
