"""Query plans that must not regress: a claim reads its pool's available keys from the
claim index even when other pools hold the lowest ids (the LIMIT planner trap), starts at its
pool's claim mark, the statements of an order called alone keep their plans, and batch saves
fetch their rows by primary key, not by a table scan."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from autokey.adapters.postgres import sql
from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.ids import SubjectId
from tests import builders as b
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


@pytest.mark.parametrize("analysed", [True, False], ids=["analysed", "new database"])
async def test_orders_called_one_at_a_time_are_not_planned_again_on_every_call(
    pg_store: PostgresStore, pg_url: str, analysed: bool
) -> None:
    """Each statement of create, pay and fulfill, called one at a time (batches of one),
    settles on a cached plan once psycopg has prepared it. With its LIMIT as a parameter the
    one-key claim did not: PostgreSQL costed its generic plan for a tenth of the pool, kept
    planning it afresh (0 generic plans of 10), and spent half the claim's time there. (One
    connection, so that one session holds every prepared statement.)"""
    store = await PostgresStore.open(pg_url, min_size=1, max_size=1)
    try:
        pool, offer = await b.stored_offer(store, keys=20)
        async with store._pool.connection() as conn:
            # Behind the 20 keys sold, 40,000 newer ones: the pool size at which a LIMIT
            # parameter made every claim be planned again.
            await conn.execute(
                "INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at) "
                "SELECT gen_random_uuid(), %s, 'AVAILABLE', '\\x00', sha256(int8send(g)), "
                "now() + g * interval '1 microsecond' FROM generate_series(1, 40000) g",
                (pool.id,),
            )
            if analysed:  # as autovacuum leaves a live database (never an empty table)
                await conn.execute("ANALYZE")
        orders = b.order_service(store)
        buyer = Principal(subject=SubjectId(uuid.uuid4()), role=Role.BUYER)
        for _ in range(15):
            view = await orders.create(buyer, offer.id, 1)
            await orders.pay(buyer, view.order.id)
            assert len((await orders.fulfill(buyer, view.order.id)).keys) == 1
        async with store._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            )
            prepared = await cur.fetchall()
    finally:
        await store.close()
    assert len(prepared) >= 8, prepared  # the flow's statements, each run 15 times
    planned_every_call = [statement for statement, generic, _ in prepared if generic == 0]
    assert planned_every_call == []


async def _insert_orders(
    conn: psycopg.AsyncConnection[tuple[object, ...]],
    count: int,
    seller: uuid.UUID,
    offer: uuid.UUID,
    pool: uuid.UUID,
    status: str = "PENDING",
) -> None:
    """`count` orders of `offer` by as many buyers, straight into the table."""
    await conn.execute(
        "INSERT INTO orders (id, buyer_id, seller_id, offer_id, pool_id, delivery_type,"
        " quantity, unit_price_amount, unit_price_currency, status, created_at, updated_at,"
        " reserved_until) SELECT gen_random_uuid(), gen_random_uuid(), %s, %s, %s,"
        " 'AUTO_KEY', 1, 1, 'EUR', %s, now(), now(), now() FROM generate_series(1, %s)",
        (seller, offer, pool, status, count),
    )


async def _sequential_scans(store: PostgresStore, table: str) -> int:
    async with store._pool.connection() as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        cur = await conn.execute(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = %s", (table,)
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_an_order_paid_and_fulfilled_alone_is_saved_by_primary_key(pg_url: str) -> None:
    """A lone pay or fulfill saves its one order by primary key. Through the batch save's
    statement, prepared on a new database (as every statement of a new connection is after
    five runs), that one row was hash-joined against a scan of all of `orders` ever after:
    200 µs per call at 3,000 orders. (One connection, so that one session holds every
    prepared statement.)"""
    store = await PostgresStore.open(pg_url, min_size=1, max_size=1)
    try:
        await store.migrate()
        pool, offer = await b.stored_offer(store, keys=15)
        orders = b.order_service(store)
        buyer = Principal(subject=SubjectId(uuid.uuid4()), role=Role.BUYER)

        async def flows(n: int) -> None:
            for _ in range(n):
                view = await orders.create(buyer, offer.id, 1)
                await orders.pay(buyer, view.order.id)
                assert len((await orders.fulfill(buyer, view.order.id)).keys) == 1

        await flows(10)  # prepared by psycopg, then planned generically by PostgreSQL
        async with store._pool.connection() as conn:
            await _insert_orders(conn, 15000, offer.seller_id, offer.id, pool.id, "FULFILLED")
        before = await _sequential_scans(store, "orders")
        await flows(5)
        after = await _sequential_scans(store, "orders")
    finally:
        await store.close()
    assert after == before


async def test_batch_saves_find_their_rows_by_primary_key_in_a_mid_sized_table(
    pg_store: PostgresStore, pg_url: str
) -> None:
    """The planner guesses 100 rows for `jsonb_to_recordset`; below some 30,000 rows it then
    scanned all of `orders` (or `g2a_reservations`) for every batch saved: 5 ms per pay or
    fulfill batch at 15,000 orders."""
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as db:
        pool, offer, seller = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await db.execute(
            "INSERT INTO key_pools (id, seller_id, name, created_at) VALUES (%s, %s, 'p', now())",
            (pool, seller),
        )
        await db.execute(
            "INSERT INTO offers (id, seller_id, title, price_amount, price_currency,"
            " delivery_type, key_pool_id, status, created_at, updated_at)"
            " VALUES (%s, %s, 't', 1, 'EUR', 'AUTO_KEY', %s, 'active', now(), now())",
            (offer, seller, pool),
        )
        await _insert_orders(db, 15000, seller, offer, pool)
        await db.execute(
            "INSERT INTO g2a_reservations (id, seller_id, state, lines, created_at, expires_at)"
            " SELECT gen_random_uuid()::text, %s, 'open', '[]', now(), now()"
            " FROM generate_series(1, 15000)",
            (seller,),
        )
        await db.execute("ANALYZE orders, g2a_reservations")
        plans = {}
        for table, statement in [
            ("orders", sql.SAVE_ORDERS),
            ("g2a_reservations", sql.SAVE_RESERVATIONS),
        ]:
            # eight of the table's rows as the batch, in the JSON the store sends
            cur = await db.execute(
                f"SELECT json_agg(t)::text FROM (SELECT * FROM {table} LIMIT 8) AS t"
            )
            batch = await cur.fetchone()
            assert batch is not None
            await db.execute("BEGIN")
            try:
                cur = await db.execute("EXPLAIN (ANALYZE, COSTS OFF) " + statement, batch)
                plans[table] = "\n".join(row[0] for row in await cur.fetchall())
            finally:
                await db.execute("ROLLBACK")
    for table, plan in plans.items():
        assert f"Seq Scan on {table}" not in plan, plan
        assert f"{table}_pkey" in plan, plan


async def test_batch_reads_and_saves_by_primary_key_never_scan_a_table_that_grew() -> None:
    """A statement psycopg has prepared keeps the generic plan PostgreSQL built then. Built
    while `orders` held three rows, that plan scans the table, and without a new ANALYZE
    (autovacuum off, or not yet run) it kept scanning it at 13,000 orders: 7 ms per batch
    read and per batch save (docs/benchmarks.md, §000000000000). The batch statements by
    primary key are planned on every execution for batches of more than one, so they use the
    index once the table grew."""
    async with scratch_postgres() as url:
        store = await PostgresStore.open(url, min_size=1, max_size=1)
        try:
            await store.migrate()
            seller = b.seller()
            pool = b.pool(seller)
            offer = b.offer(seller, pool.id)
            orders = [b.order(offer, SubjectId(uuid.uuid4())) for _ in range(3)]
            async with store.transaction() as tx:
                await tx.pools.add(pool)
                await tx.offers.add(offer)
                await tx.orders.add_many(orders)
            async with store._pool.connection() as conn:
                await conn.execute("ANALYZE orders")

            async def batches(n: int) -> None:
                for _ in range(n):
                    async with store.transaction() as tx:
                        found = await tx.orders.get_many([o.id for o in orders], for_update=True)
                        await tx.orders.save_many(list(found.values()))
                    assert len(found) == 3

            await batches(16)  # prepared by psycopg, then planned generically by PostgreSQL
            async with store._pool.connection() as conn:
                await _insert_orders(conn, 20000, seller, offer.id, pool.id)
            before = await _sequential_scans(store, "orders")
            await batches(3)
            after = await _sequential_scans(store, "orders")
        finally:
            await store.close()
    assert after == before


async def test_no_statement_is_jit_compiled_however_costly_its_plan_looks() -> None:
    """PostgreSQL JIT-compiles a statement whose estimated cost passes `jit_above_cost`. The
    batch claim on a pool of 1.2 million keys passed it (its LIMIT comes from the batch, so
    the planner costs a tenth of the pool) and spent 0.4 s compiling on every batch, for a
    statement that runs in well under a millisecond. autokey's connections run with `jit`
    off; here the database asks for JIT on every plan, whatever its cost."""
    async with scratch_postgres() as url:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
            name = db.info.dbname
            await db.execute(f'ALTER DATABASE "{name}" SET jit = on')
            await db.execute(f'ALTER DATABASE "{name}" SET jit_above_cost = 0')
        store = await PostgresStore.open(url)
        await store.migrate()
        claim = "EXPLAIN (FORMAT JSON) " + sql.KEYS_RESERVE_FOR_ORDERS
        params = {
            "orders": [uuid.uuid4(), uuid.uuid4()],
            "pools": [uuid.uuid4()] * 2,
            "quantities": [1, 1],
            "now": b.T0,
        }

        async def compiled(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
            plan = await (await conn.execute(claim, params)).fetchone()
            assert plan is not None
            return "JIT" in plan[0][0]

        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as own:
                available = await (await own.execute("SELECT pg_jit_available()")).fetchone()
                elsewhere = await compiled(own)
            async with store._pool.connection() as conn:
                ours = await compiled(conn)
        finally:
            await store.close()
    # Where the server can JIT-compile, a connection of its own does, as the database asks.
    assert available is not None
    assert elsewhere is available[0]
    assert not ours
