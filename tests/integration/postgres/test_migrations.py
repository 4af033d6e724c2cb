"""Migrations: applied once, in order, recorded, and safe to run from several processes."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import psycopg
import pytest

from autokey.adapters.postgres import migrations as pg
from autokey.adapters.postgres import sql
from autokey.adapters.postgres.migrations import load_migrations
from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.offers import DeliveryType, Money
from autokey.domain.model.orders import OrderStatus, UpstreamState
from tests import builders as b

pytestmark = pytest.mark.postgres

ALL_VERSIONS = [m.version for m in load_migrations()]

_MIGRATE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from autokey.adapters.postgres.store import PostgresStore

    async def main(url: str) -> None:
        store = await PostgresStore.open(url, min_size=1, max_size=1)
        try:
            applied = await store.migrate()
        finally:
            await store.close()
        print(",".join(str(v) for v in applied))

    asyncio.run(main(sys.argv[1]))
    """
)


async def _recorded_versions(url: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [row[0] for row in await cur.fetchall()]


def test_shipped_migrations_are_numbered_from_one_in_increasing_order() -> None:
    # Numbers are handed out per change and need not be dense (several branches add them).
    assert ALL_VERSIONS[0] == 1
    assert sorted(set(ALL_VERSIONS)) == ALL_VERSIONS
    assert all(m.sql.strip() for m in load_migrations())


def test_migration_files_sit_inside_the_package() -> None:
    # They must ship in the wheel: hatchling packages everything under src/autokey.
    folder = Path(pg.__file__).parent / "migrations"
    assert sorted(p.name for p in folder.glob("*.sql"))[0] == "0001_initial.sql"


async def test_migrate_applies_everything_once_and_twice_is_a_no_op(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url)
    try:
        assert await store.schema_version() == 0
        assert list(await store.migrate()) == ALL_VERSIONS
        assert await store.schema_version() == ALL_VERSIONS[-1]
        assert list(await store.migrate()) == []
        assert await store.schema_version() == ALL_VERSIONS[-1]
    finally:
        await store.close()
    assert await _recorded_versions(pg_url) == ALL_VERSIONS


async def test_two_processes_migrating_at_once_both_succeed_and_apply_each_version_once(
    pg_url: str,
) -> None:
    # Hold the migration lock so both processes are certainly waiting on it together,
    # then let them race.
    async with await psycopg.AsyncConnection.connect(pg_url) as blocker:
        await blocker.execute("SELECT pg_advisory_xact_lock(%s)", (pg.MIGRATION_LOCK,))
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _MIGRATE_SCRIPT,
                pg_url,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        async with asyncio.timeout(30):
            while True:
                cur = await blocker.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                )
                row = await cur.fetchone()
                if row is not None and row[0] == 2:
                    break
                await asyncio.sleep(0.05)
        await blocker.commit()  # releases the lock: both processes proceed at once

    async with asyncio.timeout(60):
        outputs = [await p.communicate() for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    applied = [[int(v) for v in out.decode().strip().split(",") if v] for out, _ in outputs]
    assert sorted(applied[0] + applied[1]) == ALL_VERSIONS
    assert await _recorded_versions(pg_url) == ALL_VERSIONS


async def _apply_only_version_one(url: str) -> None:
    """What a database migrated by the release that shipped only 0001 looks like."""
    first = load_migrations()[0]
    assert first.version == 1
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute(sql.CREATE_SCHEMA_MIGRATIONS)
        await conn.execute(first.sql.encode("utf-8"))
        await conn.execute(sql.RECORD_MIGRATION, (first.version, first.name))


async def test_a_database_at_version_one_is_upgraded_keeping_its_rows(pg_url: str) -> None:
    owner, buyer = b.seller(), b.seller()
    pool = b.pool(owner)
    old_offer = b.offer(owner, pool.id)
    old_order = b.order(old_offer, buyer)
    await _apply_only_version_one(pg_url)
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        # Rows written in the 0001 shape, by the previous release.
        await conn.execute(
            "INSERT INTO key_pools (id, seller_id, name, created_at) VALUES (%s, %s, %s, %s)",
            (pool.id, pool.seller_id, pool.name, pool.created_at),
        )
        await conn.execute(
            "INSERT INTO offers (id, seller_id, title, price_amount, price_currency,"
            " delivery_type, key_pool_id, status, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                old_offer.id,
                owner,
                old_offer.title,
                old_offer.price.amount,
                old_offer.price.currency,
                old_offer.delivery_type.value,
                pool.id,
                old_offer.status.value,
                b.T0,
                b.T0,
            ),
        )
        await conn.execute(
            "INSERT INTO orders (id, buyer_id, seller_id, offer_id, pool_id, quantity,"
            " unit_price_amount, unit_price_currency, status, created_at, updated_at,"
            " reserved_until) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                old_order.id,
                buyer,
                owner,
                old_offer.id,
                pool.id,
                old_order.quantity,
                old_order.unit_price.amount,
                old_order.unit_price.currency,
                old_order.status.value,
                b.T0,
                b.T0,
                old_order.reserved_until,
            ),
        )

    store = await PostgresStore.open(pg_url)
    try:
        assert await store.schema_version() == 1
        assert list(await store.migrate()) == ALL_VERSIONS[1:]
        assert await store.schema_version() == ALL_VERSIONS[-1]
        assert list(await store.migrate()) == []

        g2a_offer = attrs.evolve(
            b.offer(owner, pool.id),
            delivery_type=DeliveryType.G2A,
            g2a_product_id="10000068865001",
            max_price=Money(amount=Decimal("30.5"), currency="EUR"),
        )
        async with store.transaction() as tx:
            # The old rows read back unchanged, with the new fields empty.
            assert await tx.offers.get(old_offer.id) == old_offer
            assert await tx.orders.get(old_order.id) == old_order
            # The widened CHECKs accept what 0001 refused.
            await tx.offers.add(g2a_offer)
            old_order.pay(b.T0 + timedelta(seconds=1))
            old_order.start_sourcing(b.T0 + timedelta(seconds=2))
            old_order.record_upstream(UpstreamState.CREATED, b.T0 + timedelta(seconds=3), "G2A-1")
            await tx.orders.save(old_order)
            assert await tx.webhooks.remember_nonce("n-1", b.T0) is True
        async with store.transaction() as tx:
            assert await tx.offers.get(g2a_offer.id) == g2a_offer
            loaded = await tx.orders.find_by_upstream_id("G2A-1")
            assert loaded == old_order
            assert loaded.status is OrderStatus.FULFILLING
    finally:
        await store.close()
    assert await _recorded_versions(pg_url) == ALL_VERSIONS


async def test_the_database_refuses_values_the_domain_never_writes(pg_store: PostgresStore) -> None:
    # White-box: the CHECKs of 0002 hold even against a writer that bypasses the adapter.
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    order = b.order(offer, owner)
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.orders.add(order)
    bad_writes = [
        ("UPDATE orders SET upstream_state = 'lost' WHERE id = %s", order.id),
        ("UPDATE orders SET status = 'SOURCING' WHERE id = %s", order.id),
        ("UPDATE offers SET max_price_amount = 1 WHERE id = %s", offer.id),
        ("UPDATE offers SET delivery_type = 'STEAM' WHERE id = %s", offer.id),
    ]
    for query, row_id in bad_writes:
        async with pg_store._pool.connection() as conn:
            with pytest.raises(psycopg.errors.CheckViolation):
                await conn.execute(query, (row_id,))
