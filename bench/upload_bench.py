"""Bulk upload: 10^6 keys as one streamed text/plain request to a real `autokey serve` on
PostgreSQL (one worker), beside two baselines of as many rows of the same shape into the same
table, in the same run and the same scratch database: a binary COPY of pre-sealed rows (the
target: the upload at 0.9x of it or better) and a server-side INSERT ... SELECT.

Run from the repository root: `.venv/bin/python bench/upload_bench.py` (about 5 minutes).
BENCH_KEYS changes the size of the big upload (default 1000000).

Phases: a 10^5-key upload (warm-up, and the RSS reference); the pre-sealed rows are written
to COPY files (not timed); then INSERT ... SELECT, COPY, the BENCH_KEYS-key upload, COPY and
INSERT ... SELECT again, each of BENCH_KEYS rows and after a CHECKPOINT. The baselines flank
the upload so that the table growing from 0.1 to 5.1 million rows (index depth, cache) does
not favour either side. Finally the claim plan is measured before and after ANALYZE keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _harness import cli, environment, peak_rss_mib, rss_mib, scratch_database, server, token

from autokey.adapters.postgres.repositories import PostgresKeyStage
from autokey.adapters.system import Uuid7Ids
from autokey.domain.model.ids import KeyId, PoolId
from autokey.domain.model.keys import Key, KeyStatus

COUNT = int(os.environ.get("BENCH_KEYS", "1000000"))
WARM_UP = 100_000
KEY = "BENCH-{:07d}-ABCDE-FGHIJ"
LINES_PER_CHUNK = 10_000
# autokey's sealed layout: version (1) | master key id (4) | nonce (12) | ciphertext | tag (16)
SEALED_LEN = 1 + 4 + 12 + len(KEY.format(0)) + 16

COPY = """
COPY keys (id, pool_id, status, sealed, fingerprint, created_at) FROM STDIN (FORMAT BINARY)
"""
# The same statement the store runs for a claim (src/autokey/adapters/postgres/store.py).
CLAIM = """
UPDATE keys SET status = 'RESERVED', order_id = gen_random_uuid(), reserved_at = now()
WHERE id IN (
    SELECT id FROM keys
    WHERE pool_id = %s AND status = 'AVAILABLE'
    ORDER BY created_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


async def body(count: int, offset: int) -> AsyncIterator[bytes]:
    """The upload body, generated as it is sent: never more than one chunk in memory."""
    chunk: list[str] = []
    for i in range(offset, offset + count):
        chunk.append(KEY.format(i) + "\n")
        if len(chunk) == LINES_PER_CHUNK:
            yield "".join(chunk).encode()
            chunk.clear()
    if chunk:
        yield "".join(chunk).encode()


async def checkpoint(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        await db.execute("CHECKPOINT")


async def upload(
    session: aiohttp.ClientSession, api: str, auth: dict[str, str], count: int, offset: int
) -> tuple[float, str]:
    """Upload `count` keys into a new pool; (seconds, pool id)."""
    async with session.post(
        f"{api}/key-pools", json={"name": f"upload {count}"}, headers=auth
    ) as r:
        pool = (await r.json())["id"]
    started = time.perf_counter()
    async with session.post(
        f"{api}/key-pools/{pool}/keys/upload",
        data=body(count, offset),
        headers={**auth, "Content-Type": "text/plain"},
        timeout=aiohttp.ClientTimeout(total=600),
    ) as r:
        report = await r.json()
        assert r.status == 200, report
    elapsed = time.perf_counter() - started
    assert report["added"] == count, report
    assert report["availableKeys"] == count, report
    return elapsed, pool


async def sample_rss(pid: int, into: list[float]) -> None:
    while True:
        into.append(rss_mib(pid))
        await asyncio.sleep(0.2)


async def insert_select(url: str, count: int, tag: str) -> float:
    """INSERT ... SELECT `count` rows shaped like autokey's into a new pool; seconds."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        cur = await db.execute(
            "INSERT INTO key_pools (id, seller_id, name, created_at) "
            "VALUES (gen_random_uuid(), gen_random_uuid(), %s, now()) RETURNING id",
            (f"baseline {tag}",),
        )
        pool = (await cur.fetchone())[0]
        started = time.perf_counter()
        cur = await db.execute(
            "INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at) "
            "SELECT gen_random_uuid(), %s, 'AVAILABLE', "
            "substring(sha512(convert_to('s' || g, 'UTF8')) "
            "          || sha512(convert_to('t' || g, 'UTF8')) from 1 for %s), "
            "sha256(convert_to(%s || g, 'UTF8')), now() "
            "FROM generate_series(1, %s) g "
            "ON CONFLICT (fingerprint) DO NOTHING",
            (pool, SEALED_LEN, f"BENCH2-{tag}-", count),
        )
        elapsed = time.perf_counter() - started
        assert cur.rowcount == count, cur.rowcount
        return elapsed


def presealed_rows(count: int, tag: str, stage: PostgresKeyStage) -> PoolId:
    """`count` rows shaped like autokey's (UUIDv7 ids, random sealed bytes of the real length,
    distinct fingerprints) in a new pool, spooled into `stage` in COPY's binary format before
    any timing by the same encoder the store uses."""
    # Ids from autokey's own UUIDv7 generator: time-ordered, like an upload's, so both append
    # to the primary key (random ids would land all over it and make COPY look slow).
    ids = Uuid7Ids()
    pool, now = PoolId(uuid.uuid4()), datetime.now(UTC)
    for start in range(0, count, LINES_PER_CHUNK):
        stage.put(
            [
                Key(
                    id=KeyId(ids.new_id()),
                    pool_id=pool,
                    status=KeyStatus.AVAILABLE,
                    sealed=os.urandom(SEALED_LEN),
                    fingerprint=hashlib.sha256(f"COPY-{tag}-{i}".encode()).digest(),
                    created_at=now,
                )
                for i in range(start, min(count, start + LINES_PER_CHUNK))
            ]
        )
    return pool


async def copy_presealed(url: str, pool: PoolId, stage: PostgresKeyStage) -> float:
    """COPY the pre-sealed rows into `keys` (binary, one statement, as psql's \\copy would);
    seconds."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        await db.execute(
            "INSERT INTO key_pools (id, seller_id, name, created_at)"
            " VALUES (%s, gen_random_uuid(), 'baseline copy', now())",
            (pool,),
        )
        started = time.perf_counter()
        async with db.cursor() as cur, cur.copy(COPY) as copy:
            async for block in stage.blocks():
                await copy.write(block)
        elapsed = time.perf_counter() - started
        cur = await db.execute("SELECT count(*) FROM keys WHERE pool_id = %s", (pool,))
        assert (await cur.fetchone())[0] == len(stage)
    return elapsed


async def claim_ms(url: str, pool: str) -> tuple[float, str]:
    """One claim on `pool`, rolled back: (execution ms, the plan's access path)."""
    async with await psycopg.AsyncConnection.connect(url) as db:
        cur = await db.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + CLAIM, (pool,))
        plan = (await cur.fetchone())[0][0]
        await db.rollback()
    scans = []

    def walk(node: dict[str, object]) -> None:
        if "Index Name" in node:
            scans.append(f"{node['Node Type']} {node['Index Name']}")
        elif "Scan" in str(node["Node Type"]) and node["Node Type"] != "Subquery Scan":
            scans.append(str(node["Node Type"]))
        for child in node.get("Plans", []):  # type: ignore[union-attr]
            walk(child)

    walk(plan["Plan"])
    return plan["Execution Time"], ", ".join(scans)


async def main() -> None:
    async with scratch_database() as url:
        env = environment(url)
        cli("migrate", env=env)
        auth = {"Authorization": f"Bearer {token('seller', env)}"}
        async with server(env, workers="1") as (api, pid), aiohttp.ClientSession() as session:
            rss_idle = rss_mib(pid)
            small, _ = await upload(session, api, auth, WARM_UP, 10_000_000)
            rss_small = peak_rss_mib(pid)
            copies = []
            for tag in ("a", "b"):
                stage = PostgresKeyStage()  # on the event loop that reads it
                copies.append((await asyncio.to_thread(presealed_rows, COUNT, tag, stage), stage))
                stage.end()

            await checkpoint(url)
            sql_before = await insert_select(url, COUNT, "before")
            await checkpoint(url)
            copy_before = await copy_presealed(url, *copies[0])

            await checkpoint(url)
            samples: list[float] = []
            sampler = asyncio.create_task(sample_rss(pid, samples))
            big, big_pool = await upload(session, api, auth, COUNT, 0)
            sampler.cancel()
            rss_big = peak_rss_mib(pid)

            await checkpoint(url)
            copy_after = await copy_presealed(url, *copies[1])
            await checkpoint(url)
            sql_after = await insert_select(url, COUNT, "after")
            for _, stage in copies:
                stage.close()

        claim_before = await claim_ms(url, big_pool)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
            cur = await db.execute(
                "SELECT last_autoanalyze IS NOT NULL, n_live_tup, n_mod_since_analyze "
                "FROM pg_stat_user_tables WHERE relname = 'keys'"
            )
            auto_analyzed, live, unanalyzed = await cur.fetchone()
            started = time.perf_counter()
            await db.execute("ANALYZE keys")
            analyze_s = time.perf_counter() - started
        claim_after = await claim_ms(url, big_pool)

    app_rate = COUNT / big
    copy_rate = 2 * COUNT / (copy_before + copy_after)
    sql_rate = 2 * COUNT / (sql_before + sql_after)
    quarter = max(1, len(samples) // 4)
    print(f"keys per big upload: {COUNT:,}; sealed value {SEALED_LEN} bytes per key")
    print(f"autokey upload {WARM_UP:,} (warm-up): {small:.2f} s = {WARM_UP / small:,.0f} keys/s")
    print(f"autokey upload {COUNT:,}: {big:.2f} s = {app_rate:,.0f} keys/s")
    for name, before, after, rate in (
        ("COPY of pre-sealed rows", copy_before, copy_after, copy_rate),
        ("INSERT ... SELECT", sql_before, sql_after, sql_rate),
    ):
        print(
            f"{name} {COUNT:,}: before {before:.2f} s = {COUNT / before:,.0f} rows/s,"
            f" after {after:.2f} s = {COUNT / after:,.0f} rows/s, mean {rate:,.0f} rows/s;"
            f" ratio autokey / it = {app_rate / rate:.2f}x (against the first alone"
            f" {before / big:.2f}x, against the second alone {after / big:.2f}x)"
        )
    print(
        f"server RSS: {rss_idle:.0f} MiB idle; peak {rss_small:.0f} MiB after {WARM_UP:,};"
        f" peak {rss_big:.0f} MiB after {COUNT:,}"
        f" (VmRSS during the big upload: first quarter max {max(samples[:quarter]):.0f},"
        f" last quarter max {max(samples[-quarter:]):.0f} MiB, {len(samples)} samples)"
    )
    print(f"VmRSS samples (MiB, every 0.2 s): {' '.join(f'{m:.0f}' for m in samples)}")
    print(
        f"keys table before ANALYZE: {live:,} live rows, {unanalyzed:,} modified since analyze,"
        f" autovacuum had analysed it: {auto_analyzed}"
    )
    print(f"claim before ANALYZE: {claim_before[0]:.2f} ms ({claim_before[1]})")
    print(f"ANALYZE keys: {analyze_s:.2f} s")
    print(f"claim after ANALYZE:  {claim_after[0]:.2f} ms ({claim_after[1]})")


if __name__ == "__main__":
    asyncio.run(main())
