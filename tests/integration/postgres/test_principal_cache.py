"""Principals and G2A merchant access tokens cached per process, dropped when PostgreSQL
announces a revocation (ADR 0017)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from autokey.adapters.crypto import AesGcmKeyCipher, Sha256SecretHasher
from autokey.adapters.payments import SimulatedPaymentGateway
from autokey.adapters.postgres.revocations import PostgresRevocationWatch
from autokey.adapters.postgres.store import PostgresStore
from autokey.adapters.system import SystemClock, Uuid7Ids
from autokey.domain.model.auth import Role
from autokey.domain.model.errors import StoreUnavailable, Unauthenticated
from autokey.domain.model.ids import SubjectId
from autokey.domain.services.auth import AuthService
from autokey.domain.services.merchant import ACCESS_TOKEN_LIFETIME_S, MerchantService
from autokey.domain.services.orders import OrderService
from autokey.ports.store import RevocationWatch, Store
from tests.conftest import MASTER_KEY, FakeClock

pytestmark = pytest.mark.postgres


def _auth(store: Store, watch: RevocationWatch | None = None) -> AuthService:
    return AuthService(store, Sha256SecretHasher(), SystemClock(), Uuid7Ids(), watch)


@pytest.fixture
async def watch(pg_store: PostgresStore, pg_url: str) -> AsyncIterator[PostgresRevocationWatch]:
    watch = PostgresRevocationWatch(pg_url, retry_s=0.05)
    await watch.start()
    assert watch.epoch() is not None
    try:
        yield watch
    finally:
        await watch.close()


async def _moved(watch: PostgresRevocationWatch, since: int | None) -> None:
    async with asyncio.timeout(5):
        await watch.moved(since)


async def test_a_cached_principal_is_served_without_the_database(
    pg_url: str, watch: PostgresRevocationWatch
) -> None:
    store = await PostgresStore.open(pg_url)
    auth = _auth(store, watch)
    secret, token = await auth.issue_token(Role.BUYER)
    assert await auth.authenticate(secret) == token.principal
    await store.close()  # every later lookup would raise StoreUnavailable
    assert await auth.authenticate(secret) == token.principal


async def test_without_a_watch_every_call_looks_the_token_up(
    pg_store: PostgresStore, pg_url: str
) -> None:
    store = await PostgresStore.open(pg_url)
    auth = _auth(store)
    secret, _ = await auth.issue_token(Role.BUYER)
    await auth.authenticate(secret)
    await store.close()
    with pytest.raises(StoreUnavailable):
        await auth.authenticate(secret)


async def test_a_revocation_in_another_process_is_refused_once_announced(
    pg_store: PostgresStore, pg_url: str, watch: PostgresRevocationWatch
) -> None:
    here = _auth(pg_store, watch)
    secret, token = await here.issue_token(Role.SELLER)
    assert await here.authenticate(secret) == token.principal  # now cached
    before = watch.epoch()
    other = await PostgresStore.open(pg_url)  # another process's pool, no watch of its own
    try:
        assert await _auth(other).revoke(token.id)
    finally:
        await other.close()
    await _moved(watch, before)
    with pytest.raises(Unauthenticated):
        await here.authenticate(secret)


async def test_a_revocation_by_plain_sql_is_announced_too(
    pg_store: PostgresStore, pg_url: str, watch: PostgresRevocationWatch
) -> None:
    auth = _auth(pg_store, watch)
    secret, token = await auth.issue_token(Role.BUYER)
    await auth.authenticate(secret)
    before = watch.epoch()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        await admin.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = %s", (token.id,))
    await _moved(watch, before)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(secret)


async def test_while_the_listener_is_lost_nothing_is_served_from_the_cache(
    pg_url: str, watch: PostgresRevocationWatch
) -> None:
    store = await PostgresStore.open(pg_url)
    auth = _auth(store, watch)
    secret, _ = await auth.issue_token(Role.BUYER)
    await auth.authenticate(secret)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
        )
    await _moved(watch, watch.epoch())
    await store.close()
    # Whether the listener is still down or already back, the old entry is stale now.
    with pytest.raises(StoreUnavailable):
        await auth.authenticate(secret)


def _merchant(store: Store, watch: RevocationWatch, clock: FakeClock) -> MerchantService:
    cipher, payments, ids = AesGcmKeyCipher([MASTER_KEY]), SimulatedPaymentGateway(), Uuid7Ids()
    orders = OrderService(store, cipher, payments, clock, ids, reservation_ttl_s=1800)
    return MerchantService(store, orders, Sha256SecretHasher(), clock, ids, 1800, revocations=watch)


async def test_a_merchant_token_is_cached_until_its_deletion_is_announced_or_it_expires(
    pg_url: str, watch: PostgresRevocationWatch
) -> None:
    clock, seller = FakeClock(), SubjectId(uuid.uuid4())
    store = await PostgresStore.open(pg_url)
    merchant = _merchant(store, watch, clock)
    secret, credential = await merchant.create_credentials(seller)
    first = (await merchant.issue_token(credential.client_id, secret)).access_token
    assert await merchant.authenticate(first) == seller  # now cached
    clock.advance(ACCESS_TOKEN_LIFETIME_S)
    with pytest.raises(Unauthenticated):
        await merchant.authenticate(first)  # expiry is checked on every call
    clock.advance(-ACCESS_TOKEN_LIFETIME_S)
    before = watch.epoch()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        await admin.execute("DELETE FROM g2a_merchant_tokens")
    await _moved(watch, before)
    with pytest.raises(Unauthenticated):
        await merchant.authenticate(first)
    second = (await merchant.issue_token(credential.client_id, secret)).access_token
    assert await merchant.authenticate(second) == seller
    await store.close()  # every later lookup would raise StoreUnavailable
    assert await merchant.authenticate(second) == seller
