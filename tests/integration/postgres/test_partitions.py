"""Network partitions between autokey and PostgreSQL, made by a loopback proxy that keeps
every socket open but forwards nothing: the store gives up within its configured bounds and
recovers by itself. And a slow first request cannot complete an Idempotency-Key that a retry
took over after its lease (real concurrency on real PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from psycopg import errors as pg_errors

from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.errors import IdempotencyInFlight, StoreUnavailable
from autokey.domain.model.idempotency import IdempotencyRecord, IdempotencyState, StoredResponse
from autokey.domain.model.keys import KeyPool
from autokey.domain.services.idempotency import Effect, IdempotencyService
from autokey.ports.store import UnitOfWork
from tests import builders as b
from tests.conftest import FakeClock
from tests.proxy import TcpProxy, in_front_of

pytestmark = pytest.mark.postgres

STATEMENT_MS, POOL_TIMEOUT_S = 500, 1.0
SLACK_S = 3.0  # a loaded machine


@pytest.fixture
async def proxied(pg_url: str) -> AsyncIterator[tuple[PostgresStore, TcpProxy]]:
    async with in_front_of(pg_url) as (url, proxy):
        store = await PostgresStore.open(
            url,
            min_size=1,
            max_size=2,
            timeout_s=POOL_TIMEOUT_S,
            connect_timeout_s=2,
            statement_timeout_ms=STATEMENT_MS,
        )
        try:
            await store.migrate()
            yield store, proxy
        finally:
            proxy.restore()
            await store.close()


async def _elapsed_until_unavailable(store: PostgresStore) -> float:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        async with store.transaction() as tx:
            await tx.pools.get(b.pool().id)
    return time.monotonic() - started


async def test_a_blackholed_database_fails_each_transaction_within_its_bound(
    proxied: tuple[PostgresStore, TcpProxy],
) -> None:
    store, proxy = proxied
    pool = b.pool()
    async with store.transaction() as tx:
        await tx.pools.add(pool)

    proxy.blackhole()
    # The pooled connection: its statement gets no answer; given up after the bound.
    first = await _elapsed_until_unavailable(store)
    # Then new connections cannot be made: the checkout wait is bounded too.
    second = await _elapsed_until_unavailable(store)
    bound = POOL_TIMEOUT_S + STATEMENT_MS / 1000 + 1
    assert first <= bound + SLACK_S, first
    assert second <= bound + SLACK_S, second

    proxy.restore()
    for _ in range(40):  # the pool replaces the abandoned connection by itself
        try:
            async with store.transaction() as tx:
                assert await tx.pools.get(pool.id) == pool
            break
        except StoreUnavailable:
            await asyncio.sleep(0.25)
    else:
        raise AssertionError("the store did not recover after the partition")


async def test_a_first_request_that_outlives_its_lease_is_rolled_back(
    pg_store: PostgresStore, clock: FakeClock
) -> None:
    service = IdempotencyService(pg_store, clock, lease_s=5)
    slow_pool, retry_pool = b.pool(name="slow"), b.pool(name="retry")
    started, release = asyncio.Event(), asyncio.Event()

    def creating(pool: KeyPool, wait: bool) -> Effect:
        async def effect(tx: UnitOfWork) -> StoredResponse:
            await tx.pools.add(pool)
            if wait:
                started.set()
                await release.wait()
            return StoredResponse(status=201, body=str(pool).encode())

        return effect

    slow = asyncio.create_task(service.run("s", "k", b"f", creating(slow_pool, True)))
    await started.wait()
    clock.advance(5)  # the first request's lease ends while it is still running
    retried = await service.run("s", "k", b"f", creating(retry_pool, False))
    release.set()
    with pytest.raises(IdempotencyInFlight):
        await slow
    again = await service.run("s", "k", b"f", creating(b.pool(), False))
    assert (retried.replayed, again.replayed, again.response) == (False, True, retried.response)
    async with pg_store.transaction() as tx:
        assert await tx.pools.get(retry_pool.id) == retry_pool
        assert await tx.pools.get(slow_pool.id) is None  # its effect was rolled back


async def test_the_server_cancels_a_statement_after_the_configured_timeout(
    proxied: tuple[PostgresStore, TcpProxy],
) -> None:
    store, _ = proxied
    record = IdempotencyRecord(
        scope="s",
        key="locked",
        fingerprint=b"f",
        state=IdempotencyState.IN_FLIGHT,
        created_at=b.T0,
        locked_until=b.T0,
        expires_at=b.T0 + timedelta(days=1),
    )
    async with store.transaction() as tx:
        await tx.idempotency.insert(record)
    holding, done = asyncio.Event(), asyncio.Event()

    async def hold_the_row() -> None:
        async with store.transaction() as tx:
            await tx.idempotency.get("s", "locked", for_update=True)
            holding.set()
            await done.wait()

    holder = asyncio.create_task(hold_the_row())
    await holding.wait()
    try:
        with pytest.raises(StoreUnavailable) as caught:
            async with store.transaction() as tx:
                await tx.idempotency.get("s", "locked", for_update=True)
    finally:
        done.set()
        await holder
    # Cancelled by the server's statement_timeout, before the client's own deadline.
    assert isinstance(caught.value.__cause__, pg_errors.QueryCanceled)


async def test_a_clean_up_lost_to_a_cut_leaves_the_key_only_until_its_lease_ends(
    proxied: tuple[PostgresStore, TcpProxy], clock: FakeClock
) -> None:
    store, proxy = proxied
    service = IdempotencyService(store, clock, lease_s=5)

    async def refused_then_cut(tx: UnitOfWork) -> StoredResponse:
        await proxy.close()  # the database goes away before the key can be released
        raise ValueError("refused")

    async def accepted(tx: UnitOfWork) -> StoredResponse:
        return StoredResponse(status=200, body=b"{}")

    with pytest.raises(ValueError, match="refused"):  # the request's own error, not the clean-up's
        await service.run("s", "cut", b"f", refused_then_cut)
    await proxy.open()
    for _ in range(40):  # the pool reconnects by itself
        try:
            await store.ping()
            break
        except StoreUnavailable:
            await asyncio.sleep(0.25)
    with pytest.raises(IdempotencyInFlight) as busy:
        await service.run("s", "cut", b"f", accepted)
    assert busy.value.retry_after_s == 5
    clock.advance(5)
    assert (await service.run("s", "cut", b"f", accepted)).replayed is False
