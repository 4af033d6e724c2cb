"""Offer and pool reads against pools of 0, 10^5 and 10^6 keys (issue 9, target 6): the
reads must not grow with the pool.

Run from the repository root: `.venv/bin/python bench/reads_bench.py` (a few minutes: most
of it is uploading the keys). Each size gets its own seller, pool and published offer, so
`GET /seller/offers` lists exactly one offer of that size. After the uploads, `autokey sweep`
folds the key counts (as the housekeeping job does every AUTOKEY_SWEEP_INTERVAL_S) and the
database is vacuumed and analysed; then each read of each size runs BENCH_READS times, one
call at a time, the sizes and reads taking turns.
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
from _harness import analyze_filled, cli, environment, scratch_database, server, token
from orders_bench import setup

SIZES = [int(n) for n in os.environ.get("BENCH_READ_KEYS", "0,100000,1000000").split(",")]
READS = int(os.environ.get("BENCH_READS", "300"))


async def timed(
    session: aiohttp.ClientSession, targets: list[tuple[str, str]]
) -> list[tuple[float, float]]:
    """(p50, p99) ms per (url, seller token) of `targets`, READS calls each, interleaved
    (one call of each target per round), so load on a shared machine hits them alike."""
    spent: list[list[float]] = [[] for _ in targets]
    for _ in range(READS):
        for (url, seller), into in zip(targets, spent, strict=True):
            started = time.perf_counter()
            async with session.get(url, headers={"Authorization": f"Bearer {seller}"}) as r:
                await r.read()
                assert r.status == 200, r.status
            into.append((time.perf_counter() - started) * 1000)
    cuts = [statistics.quantiles(ms, n=100, method="inclusive") for ms in spent]
    return [(c[49], c[98]) for c in cuts]


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
                await analyze_filled(db)
            targets = [
                (api + path, seller)
                for _, seller, pool, offer in made
                for path in (f"/offers/{offer}", f"/key-pools/{pool}", "/seller/offers")
            ]
            async with aiohttp.ClientSession() as session:
                results = await timed(session, targets)
            rows = [(size, results[3 * i : 3 * i + 3]) for i, (size, *_) in enumerate(made)]
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
