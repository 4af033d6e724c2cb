"""Offer and pool reads against pools of 0, 10^5 and 10^6 keys (issue 9, target 6): the
reads must not grow with the pool.

Run from the repository root: `.venv/bin/python bench/reads_bench.py` (a few minutes: most
of it is uploading the keys). Each size gets its own seller, pool and published offer, so
`GET /seller/offers` lists exactly one offer of that size. After the uploads, `autokey sweep`
folds the key counts (as the housekeeping job does every AUTOKEY_SWEEP_INTERVAL_S) and the
database is vacuumed and analysed; then each read runs BENCH_READS times, one at a time.
Settings (environment):
  BENCH_READ_KEYS=0,100000,1000000   pool sizes
  BENCH_READS=300                    timed calls per read and size
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

import aiohttp
import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _harness import cli, environment, scratch_database, server, token
from orders_bench import setup

SIZES = [int(n) for n in os.environ.get("BENCH_READ_KEYS", "0,100000,1000000").split(",")]
READS = int(os.environ.get("BENCH_READS", "300"))


async def timed(session: aiohttp.ClientSession, url: str, seller: str) -> tuple[float, float]:
    """(p50, p99) ms of READS sequential GETs of `url`."""
    auth = {"Authorization": f"Bearer {seller}"}
    spent = []
    for _ in range(READS):
        started = time.perf_counter()
        async with session.get(url, headers=auth) as r:
            await r.read()
            assert r.status == 200, r.status
        spent.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(spent, n=100, method="inclusive")
    return cuts[49], cuts[98]


async def main() -> None:
    async with scratch_database() as url:
        env = environment(url, AUTOKEY_SWEEP_INTERVAL_S="3600")
        cli("migrate", env=env)
        async with server(env) as (api, _pid):
            made = []
            for size in SIZES:
                seller = token("seller", env)
                started = time.perf_counter()
                pool, offer = await setup(api, seller, f"reads{size}", size)
                print(f"{size:,} keys uploaded in {time.perf_counter() - started:.1f} s")
                made.append((size, seller, pool, offer["id"]))
            cli("sweep", env=env)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
                await db.execute("VACUUM ANALYZE")
            rows = []
            async with aiohttp.ClientSession() as session:
                for size, seller, pool, offer in made:
                    urls = (f"/offers/{offer}", f"/key-pools/{pool}", "/seller/offers")
                    rows.append((size, [await timed(session, api + u, seller) for u in urls]))
    base = rows[0][1]
    print(f"{READS} sequential calls per read; p50 / p99 ms (p50 ratio to {SIZES[0]:,} keys)")
    print("keys | GET /offers/{id} | GET /key-pools/{id} | GET /seller/offers")
    for size, reads in rows:
        cells = [
            f"{p50:.2f} / {p99:.2f} ({p50 / b50:.2f}x)"
            for (p50, p99), (b50, _) in zip(reads, base, strict=True)
        ]
        print(f"{size:,} | " + " | ".join(cells))


if __name__ == "__main__":
    asyncio.run(main())
