"""Bulk upload: 10^6 keys as one streamed text/plain request to a real `autokey serve` on
PostgreSQL, beside a server-side INSERT ... SELECT of as many rows of the same shape into the
same table, in the same run. Run from the repository root: `.venv/bin/python bench/upload_bench.py`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _harness import environment, peak_rss_mib, scratch_database, server, token

COUNT = int(os.environ.get("BENCH_KEYS", "1000000"))
KEY = "BENCH-{:07d}-ABCDE-FGHIJ"


async def body(count: int, offset: int = 0) -> AsyncIterator[bytes]:
    chunk: list[str] = []
    for i in range(offset, offset + count):
        chunk.append(KEY.format(i) + "\n")
        if len(chunk) == 10_000:
            yield "".join(chunk).encode()
            chunk.clear()
    if chunk:
        yield "".join(chunk).encode()


async def upload(
    session: aiohttp.ClientSession, api: str, auth: dict[str, str], count: int, offset: int
) -> tuple[float, dict[str, int]]:
    async with session.post(f"{api}/key-pools", json={}, headers=auth) as r:
        pool = (await r.json())["id"]
    started = time.perf_counter()
    async with session.post(
        f"{api}/key-pools/{pool}/keys/upload",
        data=body(count, offset),
        headers={**auth, "Content-Type": "text/plain"},
        timeout=aiohttp.ClientTimeout(total=900),
    ) as r:
        report = await r.json()
    elapsed = time.perf_counter() - started
    assert report["added"] == count, report
    return elapsed, report


async def insert_select(url: str, count: int) -> float:
    sample = KEY.format(0)
    sealed_len = 1 + 4 + 12 + len(sample) + 16  # autokey's sealed layout for such a key
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        pool = (
            await (
                await db.execute(
                    "INSERT INTO key_pools (id, seller_id, name, created_at) "
                    "VALUES (gen_random_uuid(), gen_random_uuid(), 'bench', now()) RETURNING id"
                )
            ).fetchone()
        )[0]
        started = time.perf_counter()
        await db.execute(
            "INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at) "
            "SELECT gen_random_uuid(), %s, 'AVAILABLE', "
            "substring(sha512(convert_to('s' || g, 'UTF8')) || sha512(convert_to('t' || g, "
            "'UTF8')) from 1 for %s), sha256(convert_to('BENCH2-' || g, 'UTF8')), now() "
            "FROM generate_series(1, %s) g ON CONFLICT (fingerprint) DO NOTHING",
            (pool, sealed_len, count),
        )
        return time.perf_counter() - started


async def main() -> None:
    async with scratch_database() as url:
        env = environment(url)
        from _harness import cli

        cli("migrate", env=env)
        auth = {"Authorization": f"Bearer {token('seller', env)}"}
        async with server(env) as (api, pid), aiohttp.ClientSession() as session:
            small, _ = await upload(session, api, auth, 100_000, 10_000_000)
            rss_small = peak_rss_mib(pid)
            big, _ = await upload(session, api, auth, COUNT, 0)
            rss_big = peak_rss_mib(pid)
        sql = await insert_select(url, COUNT)
    app_rate, sql_rate = COUNT / big, COUNT / sql
    print(f"keys={COUNT:,}")
    print(
        f"autokey text/plain upload: {big:.2f} s = {app_rate:,.0f} keys/s "
        f"(100k warm-up: {100_000 / small:,.0f} keys/s)"
    )
    print(f"server peak RSS: {rss_small:.0f} MiB after 100k, {rss_big:.0f} MiB after +{COUNT:,}")
    print(f"INSERT ... SELECT:         {sql:.2f} s = {sql_rate:,.0f} rows/s")
    print(f"ratio autokey / INSERT ... SELECT = {app_rate / sql_rate:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
