"""Claims as a pool ages (issue 9, target 5): deliver every key of one pool of 10^6 and
compare the first and the last 10 % of the run.

Run from the repository root: `.venv/bin/python bench/claims_bench.py`. The keys are
inserted server-side (`generate_series`, placeholder ciphertexts: nothing here decrypts),
then BENCH_CLIENTS tasks each loop over autokey's own PostgreSQL store: one transaction
claims a key for a new order (`KeyRepository.claim`, the statement `POST /orders` runs), a
second delivers it (`deliver_order`, as `POST /orders/{id}/fulfill` does), until the pool
is empty, while `autokey sweep` runs every BENCH_SWEEP_S as `serve`'s housekeeping would
(folding counts, moving the claim marks). It runs with the `keys` autovacuum settings of
migration 0007 and reports, per tenth of the keys, orders/s and claim latency p50/p99.
Settings (environment):
  BENCH_KEYS=1000000   keys in the pool (and orders delivered)
  BENCH_CLIENTS=8      concurrent buyers
  BENCH_SWEEP_S=15     seconds between housekeeping runs (AUTOKEY_SWEEP_INTERVAL_S's default)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _harness import cli, environment, scratch_database

from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.ids import OrderId, PoolId

KEYS = int(os.environ.get("BENCH_KEYS", "1000000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
SWEEP_S = float(os.environ.get("BENCH_SWEEP_S", "15"))

_POOL = "INSERT INTO key_pools (id, seller_id, name, created_at) VALUES (%s, %s, 'aging', now())"
_KEYS = """
INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at)
SELECT gen_random_uuid(), %s, 'AVAILABLE', '\\x00', sha256(int8send(g)),
       now() + g * interval '1 microsecond'
FROM generate_series(1, %s) g
"""


async def buyer(store: PostgresStore, pool: PoolId, done: list[tuple[float, float]]) -> None:
    """Claim and deliver until the pool is empty; appends (finished at, claim ms) per order."""
    while True:
        order = OrderId(uuid.uuid4())
        started = time.perf_counter()
        async with store.transaction() as tx:
            claimed = await tx.keys.claim(pool, order, 1, datetime.now(UTC))
        claim_ms = (time.perf_counter() - started) * 1000
        if not claimed:
            return
        async with store.transaction() as tx:
            await tx.keys.deliver_order(order, datetime.now(UTC))
        done.append((time.perf_counter(), claim_ms))


async def housekeeping(env: dict[str, str]) -> None:
    while True:
        await asyncio.sleep(SWEEP_S)
        await asyncio.to_thread(cli, "sweep", env=env)


def tenth(rows: list[tuple[float, float]], since: float) -> str:
    seconds = rows[-1][0] - since
    ms = sorted(r[1] for r in rows)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return f"{len(rows) / seconds:7.0f} orders/s, claim p50 {cuts[49]:.2f} / p99 {cuts[98]:.2f} ms"


async def main() -> None:
    async with scratch_database() as url:
        env = environment(url)
        cli("migrate", env=env)
        pool = PoolId(uuid.uuid4())
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
            await db.execute(_POOL, (pool, uuid.uuid4()))
            await db.execute(_KEYS, (pool, KEYS))
            await db.execute("VACUUM ANALYZE keys")
        store = await PostgresStore.open(url, max_size=CLIENTS)
        done: list[tuple[float, float]] = []
        started = time.perf_counter()
        sweeper = asyncio.create_task(housekeeping(env))
        try:
            await asyncio.gather(*(buyer(store, pool, done) for _ in range(CLIENTS)))
        finally:
            sweeper.cancel()
            await store.close()
    total = time.perf_counter() - started
    print(f"{len(done):,} keys delivered by {CLIENTS} buyers in {total:.0f} s")
    size = len(done) // 10
    for i in range(10):
        rows = done[i * size : (i + 1) * size]
        since = done[i * size - 1][0] if i else started
        print(f"tenth {i + 1:2d}: {tenth(rows, since)}")
    first, last = done[:size], done[-size:]
    ratio = (size / (last[-1][0] - done[-size - 1][0])) / (size / (first[-1][0] - started))
    print(f"last tenth / first tenth orders/s: {ratio:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
