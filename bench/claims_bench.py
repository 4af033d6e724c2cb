"""Claims as a pool ages (issue 9, target 5): deliver every key of one pool of 10^6 and
compare the first and the last 10 % of the run.

Run from the repository root: `.venv/bin/python bench/claims_bench.py`. The keys are
inserted server-side (`generate_series`, placeholder ciphertexts: nothing here decrypts),
then BENCH_CLIENTS tasks, each on a connection of its own, loop over autokey's PostgreSQL key
repository: one pipelined transaction claims a key for a new order
(`PostgresKeyRepository.claim`, the statement `POST /orders` runs), a second delivers it
(`deliver_order`, as `POST /orders/{id}/fulfill` does), until the pool is empty, while
`autokey sweep` runs every BENCH_SWEEP_S as `serve`'s housekeeping would (folding counts,
moving the claim marks). It runs with the `keys` autovacuum settings of migration 0007 and
reports, per tenth of the keys, orders/s and claim latency p50/p99, and the CPU per order of
the load generator and PostgreSQL (from /proc).

The per-table settings of migration 0007 only act where autovacuum is on. By default the run
therefore uses a private PostgreSQL instance when the server of BENCH_POSTGRES_URL has
`autovacuum = off`: `initdb` in a temporary directory (the newest binaries under
/usr/lib/postgresql, run as the `postgres` user when started as root), stock settings, a free
loopback port; it is stopped and removed afterwards, also after an error or Ctrl-C. At the
end the run prints how often autovacuum and autoanalyze processed `keys`.
Settings (environment):
  BENCH_KEYS=1000000   keys in the pool (and orders delivered)
  BENCH_CLIENTS=8      concurrent buyers
  BENCH_BATCH=1        orders per claim: above 1, each buyer claims for that many orders at
                       once (`claim_many`, a group-commit batch of creates) and delivers them
                       together (`deliver_orders`)
  BENCH_SWEEP_S=15     seconds between housekeeping runs (AUTOKEY_SWEEP_INTERVAL_S's default)
  BENCH_PRIVATE_PG=auto  1: always a private instance; 0: always BENCH_POSTGRES_URL's server;
                       auto: private when that server's autovacuum is off
  BENCH_PG_OPTIONS     server options of the private instance, e.g. "-c autovacuum_naptime=10s"
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _harness import CpuMeter, admin_server, cli, environment, parent_pid, scratch_database

from autokey.adapters.postgres import sql
from autokey.adapters.postgres.repositories import PostgresKeyRepository
from autokey.domain.model.ids import OrderId, PoolId

KEYS = int(os.environ.get("BENCH_KEYS", "1000000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
BATCH = int(os.environ.get("BENCH_BATCH", "1"))
SWEEP_S = float(os.environ.get("BENCH_SWEEP_S", "15"))
STATEMENT_TIMEOUT_MS = 5000  # AUTOKEY_DB_STATEMENT_TIMEOUT_MS's default

_POOL = "INSERT INTO key_pools (id, seller_id, name, created_at) VALUES (%s, %s, 'aging', now())"
_KEYS = """
INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at)
SELECT gen_random_uuid(), %s, 'AVAILABLE', '\\x00', sha256(int8send(g)),
       now() + g * interval '1 microsecond'
FROM generate_series(1, %s) g
"""
_VACUUMED = """
SELECT autovacuum_count, autoanalyze_count, n_dead_tup, current_setting('autovacuum')
FROM pg_stat_user_tables WHERE relname = 'keys'
"""


@contextlib.asynccontextmanager
async def transaction(conn: psycopg.AsyncConnection) -> AsyncIterator[PostgresKeyRepository]:
    """autokey's key repository in a pipelined BEGIN ... COMMIT on the buyer's own connection:
    the statements and round trips of `PostgresStore.transaction`, without its pool checkout
    and the eleven other repositories it builds (a third of the load generator's CPU)."""
    async with conn.pipeline() as pipeline:
        await conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED", prepare=False)
        yield PostgresKeyRepository(conn, pipeline)
        await conn.execute("COMMIT", prepare=False)


async def buyer(
    conn: psycopg.AsyncConnection, pool: PoolId, done: list[tuple[float, float]]
) -> None:
    """Claim and deliver until the pool is empty; appends (finished at, claim ms) per order."""
    while True:
        orders = [OrderId(uuid.uuid4()) for _ in range(BATCH)]
        started = time.perf_counter()
        async with transaction(conn) as keys:
            if BATCH == 1:
                claimed = {orders[0]: await keys.claim(pool, orders[0], 1, datetime.now(UTC))}
            else:
                claimed = dict(
                    await keys.claim_many([(o, pool, 1) for o in orders], datetime.now(UTC))
                )
        claim_ms = (time.perf_counter() - started) * 1000
        served = [o for o in orders if claimed.get(o)]
        if not served:
            return
        async with transaction(conn) as keys:
            if BATCH == 1:
                await keys.deliver_order(served[0], datetime.now(UTC))
            else:
                await keys.deliver_orders(served, datetime.now(UTC))
        finished = time.perf_counter()
        done.extend((finished, claim_ms) for _ in served)


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
    with admin_server() as admin:
        print(f"PostgreSQL: {admin}, load average {os.getloadavg()[0]:.2f}")
        async with scratch_database(admin) as url:
            env = environment(url)
            cli("migrate", env=env)
            pool = PoolId(uuid.uuid4())
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
                await db.execute(_POOL, (pool, uuid.uuid4()))
                await db.execute(_KEYS, (pool, KEYS))
                await db.execute("VACUUM ANALYZE keys")
            done: list[tuple[float, float]] = []
            async with contextlib.AsyncExitStack() as stack:
                connections = [
                    await stack.enter_async_context(
                        await psycopg.AsyncConnection.connect(url, autocommit=True)
                    )
                    for _ in range(CLIENTS)
                ]
                for conn in connections:  # as autokey's pool sets up its own (no JIT, ADR 0039)
                    await conn.execute(sql.SESSION_SETTINGS, (str(STATEMENT_TIMEOUT_MS),))
                backend = await (await connections[0].execute("SELECT pg_backend_pid()")).fetchone()
                meter = CpuMeter(postmaster=parent_pid(backend[0]))
                meter.start()
                started = time.perf_counter()
                sweeper = asyncio.create_task(housekeeping(env))
                try:
                    await asyncio.gather(*(buyer(conn, pool, done) for conn in connections))
                finally:
                    sweeper.cancel()
                total, cores = time.perf_counter() - started, meter.stop()
            async with await psycopg.AsyncConnection.connect(url) as db:
                vacuumed = await (await db.execute(_VACUUMED)).fetchone()
    print(f"{len(done):,} keys delivered by {CLIENTS} buyers ({BATCH} orders per claim)"
          f" in {total:.0f} s, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    per_order = {k: cores[k] * total / len(done) * 1000 for k in ("client", "postgres", "machine")}
    print("CPU ms per order: " + ", ".join(f"{k} {v:.2f}" for k, v in per_order.items()))
    size = len(done) // 10
    for i in range(10):
        rows = done[i * size : (i + 1) * size]
        since = done[i * size - 1][0] if i else started
        print(f"tenth {i + 1:2d}: {tenth(rows, since)}")
    first, last = done[:size], done[-size:]
    ratio = (size / (last[-1][0] - done[-size - 1][0])) / (size / (first[-1][0] - started))
    print(f"last tenth / first tenth orders/s: {ratio:.2f}x")
    print(f"keys afterwards: {vacuumed[0]} autovacuum and {vacuumed[1]} autoanalyze runs,"
          f" {vacuumed[2]:,} dead tuples (autovacuum = {vacuumed[3]})")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
