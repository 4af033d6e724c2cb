"""The startup key check stays cheap on a large inventory: which master keys the rows need is
answered from the keys_sealed_with index, one probe per distinct key id (migration 0004)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from autokey.adapters.postgres import sql
from autokey.adapters.postgres.store import PostgresStore
from tests.services import scratch_postgres

pytestmark = pytest.mark.postgres


async def test_master_key_ids_probe_the_index_instead_of_reading_every_key() -> None:
    async with scratch_postgres() as url:
        store = await PostgresStore.open(url)
        await store.migrate()
        async with store.transaction() as tx:
            assert await tx.keyring.master_key_ids() == frozenset()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
            pool = uuid.uuid4()
            await db.execute(
                "INSERT INTO key_pools (id, seller_id, name, created_at) "
                "VALUES (%s, %s, 'p', now())",
                (pool, uuid.uuid4()),
            )
            # 60,000 keys: version byte, then one of two master key ids, then "ciphertext".
            await db.execute(
                "INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at) "
                "SELECT gen_random_uuid(), %s, 'AVAILABLE', "
                "CASE WHEN g %% 3 = 0 THEN '\\x01aaaaaaaa'::bytea ELSE '\\x01bbbbbbbb'::bytea END"
                " || sha256(int4send(g)), sha256(int4send(g)), now() "
                "FROM generate_series(1, 60000) g",
                (pool,),
            )
            await db.execute("ANALYZE keys")
            plan = await (
                await db.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql.MASTER_KEY_IDS)
            ).fetchall()
        async with store.transaction() as tx:
            assert await tx.keyring.master_key_ids() == {"aaaaaaaa", "bbbbbbbb"}
        await store.close()
    text = "\n".join(row[0] for row in plan)
    assert "keys_sealed_with" in text, text
    assert "Seq Scan on keys" not in text, text
