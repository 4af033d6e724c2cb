"""Query plans that must not regress: a claim reads its pool's available keys from the
claim index even when other pools hold the lowest ids (the LIMIT planner trap)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from autokey.adapters.postgres import sql
from autokey.adapters.postgres.store import PostgresStore
from tests.services import scratch_postgres

pytestmark = pytest.mark.postgres


async def test_a_claim_on_a_later_pool_uses_the_pool_status_index() -> None:
    async with scratch_postgres() as url:
        store = await PostgresStore.open(url)
        await store.migrate()
        await store.close()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
            pools = []
            for name in ("earlier", "later"):
                pool = uuid.uuid4()
                await db.execute(
                    "INSERT INTO key_pools (id, seller_id, name, created_at) "
                    "VALUES (%s, %s, %s, now())",
                    (pool, uuid.uuid4(), name),
                )
                # ids increase across pools, as UUIDv7 ids of successive uploads do
                await db.execute(
                    "INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at) "
                    "SELECT (lpad(to_hex(%s * 1000000 + g), 32, '0'))::uuid, %s, 'AVAILABLE', "
                    "'\\x00', sha256(convert_to(%s || g, 'UTF8')), now() "
                    "FROM generate_series(1, 40000) g",
                    (len(pools) + 1, pool, name),
                )
                pools.append(pool)
            await db.execute("ANALYZE keys")
            statement = sql.KEY_RESERVE
            plan = await (
                await db.execute(
                    "EXPLAIN (ANALYZE, COSTS OFF) " + statement, (uuid.uuid4(), None, pools[1], 1)
                )
            ).fetchall()
    text = "\n".join(row[0] for row in plan)
    assert "keys_claim_order" in text, text
    assert "Rows Removed by Filter" not in text, text


async def test_a_claim_starts_at_the_mark_past_the_dead_entries_of_earlier_claims(
    pg_store: PostgresStore, pg_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as db:
        pool = uuid.uuid4()
        await db.execute(
            "INSERT INTO key_pools (id, seller_id, name, created_at) VALUES (%s, %s, 'p', now())",
            (pool, uuid.uuid4()),
        )
        await db.execute(
            "INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at) "
            "SELECT gen_random_uuid(), %s, 'AVAILABLE', '\\x00', sha256(int8send(g)), "
            "now() + g * interval '1 microsecond' FROM generate_series(1, 40000) g",
            (pool,),
        )
        await db.execute("VACUUM ANALYZE keys")
        # Half the pool sold, no vacuum since: 20,000 dead entries head the claim index.
        await db.execute(
            "UPDATE keys SET status = 'DELIVERED' WHERE id IN (SELECT id FROM keys"
            " WHERE pool_id = %s ORDER BY created_at, id LIMIT 20000)",
            (pool,),
        )
        async with pg_store.transaction() as tx:
            await tx.keys.advance_claim_marks()

        async def pages_read(statement: str, params: tuple[object, ...]) -> int:
            await db.execute("BEGIN")
            try:
                cur = await db.execute(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params
                )
                row = await cur.fetchone()
            finally:
                await db.execute("ROLLBACK")
            assert row is not None
            return int(row[0][0]["Plan"]["Shared Hit Blocks"]) + int(
                row[0][0]["Plan"]["Shared Read Blocks"]
            )

        order, now = uuid.uuid4(), None
        from_head = await pages_read(sql.KEY_RESERVE, (order, now, pool, 1))
        from_mark = await pages_read(sql.KEY_RESERVE_FROM_MARK, (order, now, pool, pool, 1))
    assert from_head > 40, from_head  # the dead entries' index pages
    assert from_mark * 4 < from_head, (from_mark, from_head)
