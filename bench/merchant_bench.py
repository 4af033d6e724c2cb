"""G2A's merchant calls (reserve -> order) over HTTP against `autokey serve` on PostgreSQL at
32 concurrent G2A callers (BENCH_CLIENTS), beside pgbench running the same SQL
(`merchant_flow.sql`) on the same database in the same run.

Run from the repository root: `.venv/bin/python bench/merchant_bench.py` (about a minute).
Settings (environment):
  BENCH_CLIENTS=32       concurrency levels, comma-separated
  BENCH_PRIVATE_PG=auto  the PostgreSQL server: auto runs on a private instance (initdb in a
                         temporary directory, autovacuum on) when BENCH_POSTGRES_URL's server
                         has autovacuum off; 1 always, 0 never (_harness.admin_server)
  BENCH_SECONDS=20       measured seconds per level and side (after BENCH_WARMUP=3 s)
  BENCH_SERVERS=1        autokey serve processes on the same database (callers alternate)
  BENCH_POOL_KEYS        keys in each side's key pool (default: 40,000 per level), as in
                         orders_bench.py
  BENCH_GROUP_COMMIT=0   AUTOKEY_GROUP_COMMIT for the server (default: autokey's, on)
  BENCH_LOADGEN=aiohttp  the load generator: aiohttp (Python, in this process) or native
                         (bench/loadgen.c; see orders_bench.py)
  BENCH_VERBOSE=1        print pgbench's full reports
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

import aiohttp
import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _harness import (
    LOADGEN,
    CpuMeter,
    analyze_filled,
    bench_database,
    cli,
    environment,
    native_flows,
    process_tree,
    server,
)
from orders_bench import (
    GROUP_COMMIT,
    POOL_KEYS,
    SECONDS,
    SERVERS,
    WARMUP,
    _cores,
    _pct,
    pgbench_run,
    setup,
)

CLIENTS = [int(c) for c in os.environ.get("BENCH_CLIENTS", "32").split(",")]
SCRIPT = os.path.join(os.path.dirname(__file__), "merchant_flow.sql")
CALLS = ("reserve", "order")
PRODUCT = 10000068865001
PGBENCH_PRODUCT = "10000149026001"
STOCK_PER_LEVEL = 40_000


async def _caller(
    session: aiohttp.ClientSession,
    api: str,
    token: str,
    until: float,
    first_order_id: int,
    latencies: dict[str, list[float]],
) -> int:
    """One G2A caller: reserve one key, then order it, until `until`."""
    auth = {"Authorization": f"Bearer {token}"}
    item = [{"product_id": PRODUCT, "quantity": 1, "additional_data": {"unit_price": "1.00"}}]
    done = 0
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        async with session.post(f"{api}/g2a/merchant/reservation", json=item, headers=auth) as r:
            reserved = await r.json()
            assert r.status == 200, reserved
        t1 = time.perf_counter()
        body = {"reservation_id": reserved["reservation_id"], "g2a_order_id": first_order_id + done}
        async with session.post(f"{api}/g2a/merchant/order", json=body, headers=auth) as r:
            ordered = await r.json()
            assert r.status == 200, ordered
            assert len(ordered["stock"][0]["inventory"]) == 1, ordered
        t2 = time.perf_counter()
        latencies["reserve"].append((t1 - t0) * 1000)
        latencies["order"].append((t2 - t1) * 1000)
        done += 1
    return done


async def autokey_run(
    apis: list[str], pids: list[int], token: str, clients: int, seconds: float, base: int
) -> dict[str, Any]:
    if LOADGEN == "native":
        args = (token, str(PRODUCT), clients, WARMUP, seconds, str(base))
        return await native_flows("merchant", apis, pids, *args)
    latencies: dict[str, list[float]] = {c: [] for c in CALLS}
    meter = CpuMeter(pids)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

        def callers(until: float, into: dict[str, list[float]], offset: int) -> list[Any]:
            return [
                _caller(session, apis[i % len(apis)], token, until, offset + i * 10**6, into)
                for i in range(clients)
            ]

        warm = {c: [] for c in CALLS}
        await asyncio.gather(*callers(time.perf_counter() + WARMUP, warm, base))
        meter.start()
        started = time.perf_counter()
        done = await asyncio.gather(*callers(started + seconds, latencies, base + 5 * 10**5))
        elapsed = time.perf_counter() - started
        cores = meter.stop()
    return {
        "flows_s": sum(done) / elapsed,
        "cores": cores,
        **{f"{c}_p50": _pct(v, 50) for c, v in latencies.items()},
        **{f"{c}_p99": _pct(v, 99) for c, v in latencies.items()},
    }


async def merchant_token(api: str, env: dict[str, str], seller_subject: str) -> str:
    credentials = json.loads(
        cli("g2a", "merchant-credentials", "create", "--seller", seller_subject, env=env)
    )
    query = {
        "grant_type": "client_credentials",
        "client_id": credentials["clientId"],
        "client_secret": credentials["clientSecret"],
    }
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{api}/g2a/merchant/oauth/token", params=query) as r,
    ):
        token: str = (await r.json())["access_token"]
    return token


async def main() -> None:
    async with bench_database() as url:
        env = environment(url, **({"AUTOKEY_GROUP_COMMIT": GROUP_COMMIT} if GROUP_COMMIT else {}))
        cli("migrate", env=env)
        seller = json.loads(cli("token", "create", "--role", "seller", env=env))
        async with contextlib.AsyncExitStack() as stack:
            started = [await stack.enter_async_context(server(env)) for _ in range(SERVERS)]
            apis = [a for a, _ in started]
            pids = [worker for _, p in started for worker in process_tree(p)]
            stock = max(STOCK_PER_LEVEL * len(CLIENTS), POOL_KEYS)
            # Two active offers of one seller need two G2A product ids.
            await setup(apis[0], seller["token"], "g2a", stock, g2aProductId=str(PRODUCT))
            pg_pool, pg_offer = await setup(
                apis[0], seller["token"], "pgbench", stock, g2aProductId=PGBENCH_PRODUCT
            )
            token = await merchant_token(apis[0], env, seller["subject"])
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
                await analyze_filled(db)
                await db.execute("CHECKPOINT")
            variables = {
                "pool": pg_pool,
                "offer": pg_offer["id"],
                "seller": seller["subject"],
                "buyer": seller["subject"],
                "product": PGBENCH_PRODUCT,
            }
            rows = []
            for level, clients in enumerate(CLIENTS):
                app = await autokey_run(apis, pids, token, clients, SECONDS, level * 10**9)
                raw = await asyncio.to_thread(pgbench_run, url, variables, clients, pids, SCRIPT)
                rows.append((clients, app, raw))
    print(f"{SERVERS} autokey serve process(es), {SECONDS:.0f} s per level after {WARMUP:.0f} s")
    print(
        "G2A callers | autokey reserve+order/s | reserve p50/p99 ms | order p50/p99 ms"
        " | pgbench flows/s | pgbench reserve/order avg ms | pgbench flow p50/p99 ms | ratio"
    )
    for clients, app, raw in rows:
        calls = " / ".join(f"{ms:.2f}" for ms in raw["calls_avg"])
        print(
            f"{clients} | {app['flows_s']:.0f}"
            f" | {app['reserve_p50']:.1f} / {app['reserve_p99']:.1f}"
            f" | {app['order_p50']:.1f} / {app['order_p99']:.1f}"
            f" | {raw['orders_s']:.0f} | {calls} | {raw['flow_p50']:.1f} / {raw['flow_p99']:.1f}"
            f" | {app['flows_s'] / raw['orders_s']:.2f}x"
        )
    for clients, app, raw in rows:
        print(
            f"  {clients} callers: autokey run"
            f" {_cores(app['cores'], 'server', 'client', 'postgres', 'machine')}"
            f" | pgbench run pgbench={raw['cores']['children']:.2f}"
            f" machine={raw['cores']['machine']:.2f} (failed transactions: {raw['failed']})"
        )


if __name__ == "__main__":
    asyncio.run(main())
