"""An unreachable or restarted database surfaces as StoreUnavailable, never a psycopg error."""

from __future__ import annotations

import psycopg
import pytest

from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.errors import StoreUnavailable
from autokey.domain.model.keys import KeyPool
from tests import builders as b

pytestmark = pytest.mark.postgres

NOWHERE = "postgresql://postgres@127.0.0.1:1/postgres"


def _assert_translated(exc: StoreUnavailable) -> None:
    assert exc.store == "postgres"
    assert not isinstance(exc, psycopg.Error)
    assert isinstance(exc.__cause__, psycopg.Error)  # kept for the logs, chained


async def _terminate_backends(url: str) -> int:
    """What a server restart does to the pool's connections."""
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
        row = await cur.fetchone()
    return 0 if row is None else int(row[0])


async def test_opening_an_unreachable_database_raises_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        await PostgresStore.open(NOWHERE, timeout_s=0.5)
    _assert_translated(caught.value)


async def test_ping_and_transaction_on_an_unreachable_database_raise_store_unavailable() -> None:
    store = await PostgresStore.open(NOWHERE, min_size=0, timeout_s=0.5)
    try:
        with pytest.raises(StoreUnavailable) as pinged:
            await store.ping()
        _assert_translated(pinged.value)
        with pytest.raises(StoreUnavailable) as began:
            async with store.transaction() as tx:
                await tx.pools.get(b.pool().id)
        _assert_translated(began.value)
        with pytest.raises(StoreUnavailable):
            await store.migrate()
        with pytest.raises(StoreUnavailable):
            await store.schema_version()
    finally:
        await store.close()


async def _pool_of_after_restart(
    store: PostgresStore, pool: KeyPool, killed: int
) -> KeyPool | None:
    """Read `pool` back once the killed connections are gone: each of them may fail one call
    (no check on checkout, ADR 0016), then the store recovers without being reopened."""
    for _ in range(killed):
        try:
            async with store.transaction() as tx:
                return await tx.pools.get(pool.id)
        except StoreUnavailable as exc:
            _assert_translated(exc)
    async with store.transaction() as tx:
        return await tx.pools.get(pool.id)


async def test_a_restarted_server_costs_each_pooled_connection_one_failure_at_most(
    pg_store: PostgresStore, pg_url: str
) -> None:
    pool = b.pool()
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
    killed = await _terminate_backends(pg_url)
    assert killed >= 1
    assert await _pool_of_after_restart(pg_store, pool, killed) == pool
    await pg_store.ping()


async def test_a_connection_lost_mid_transaction_raises_store_unavailable(
    pg_store: PostgresStore, pg_url: str
) -> None:
    pool = b.pool()
    with pytest.raises(StoreUnavailable) as caught:
        async with pg_store.transaction() as tx:
            await tx.pools.add(pool)
            killed = await _terminate_backends(pg_url)
            await tx.pools.get(pool.id)
    _assert_translated(caught.value)
    # The broken transaction never committed.
    assert await _pool_of_after_restart(pg_store, pool, killed) is None
