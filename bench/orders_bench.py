"""Complete orders (create -> pay -> fulfill) over HTTP against one `autokey serve` on
PostgreSQL at 1, 8 and 32 concurrent clients, beside pgbench running the plain per-order SQL
(`order_flow.sql`) on the same database in the same run.
Run from the repository root: `.venv/bin/python bench/orders_bench.py`.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp
import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _harness import cli, environment, scratch_database, server, token

SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
CLIENTS = [int(c) for c in os.environ.get("BENCH_CLIENTS", "1,8,32").split(",")]
PGBENCH = os.environ.get("PGBENCH", "/usr/lib/postgresql/15/bin/pgbench")
CALLS = ("create", "pay", "fulfill")


async def _client(
    session: aiohttp.ClientSession,
    api: str,
    buyer: str,
    offer: str,
    until: float,
    latencies: dict[str, list[float]],
) -> int:
    auth = {"Authorization": f"Bearer {buyer}"}
    done = 0
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        async with session.post(f"{api}/orders", json={"offerId": offer}, headers=auth) as r:
            order = await r.json()
            assert r.status == 201, order
        t1 = time.perf_counter()
        async with session.post(f"{api}/orders/{order['id']}/pay", headers=auth) as r:
            assert r.status == 200, await r.text()
        t2 = time.perf_counter()
        async with session.post(f"{api}/orders/{order['id']}/fulfill", headers=auth) as r:
            assert r.status == 200, await r.text()
        t3 = time.perf_counter()
        for call, spent in zip(CALLS, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            latencies[call].append(spent * 1000)
        done += 1
    return done


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def autokey_run(api: str, buyer: str, offer: str, clients: int) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {c: [] for c in CALLS}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(
            *(
                _client(session, api, buyer, offer, time.perf_counter() + 2, {c: [] for c in CALLS})
                for _ in range(clients)
            )
        )
        started = time.perf_counter()
        done = await asyncio.gather(
            *(
                _client(session, api, buyer, offer, started + SECONDS, latencies)
                for _ in range(clients)
            )
        )
        elapsed = time.perf_counter() - started
    return {
        "orders_s": sum(done) / elapsed,
        **{f"{c}_p50": _pct(v, 50) for c, v in latencies.items()},
        **{f"{c}_p99": _pct(v, 99) for c, v in latencies.items()},
    }


def pgbench_run(url: str, variables: dict[str, str], clients: int) -> dict[str, Any]:
    args = [
        PGBENCH,
        "-n",
        "-f",
        os.environ.get("BENCH_SCRIPT", os.path.join(os.path.dirname(__file__), "order_flow.sql")),
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-T",
        str(int(SECONDS)),
        "-r",
    ]
    for name, value in variables.items():
        args += ["-D", f"{name}={value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if os.environ.get("BENCH_VERBOSE"):
        print(out)
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    return {"orders_s": tps, "flow_ms": latency}


async def main() -> None:
    async with scratch_database() as url:
        env = environment(url)
        cli("migrate", env=env)
        seller, buyer = token("seller", env), token("buyer", env)
        async with server(env) as (api, _pid), aiohttp.ClientSession() as s:
            auth = {"Authorization": f"Bearer {seller}"}
            stock = 40_000 * len(CLIENTS)
            offers = []
            for name in ("autokey", "pgbench"):
                async with s.post(f"{api}/key-pools", json={"name": name}, headers=auth) as r:
                    pool = (await r.json())["id"]
                keys = "".join(f"{name}-{i:07d}-KEY\n" for i in range(stock)).encode()
                async with s.post(
                    f"{api}/key-pools/{pool}/keys/upload",
                    data=keys,
                    headers={**auth, "Content-Type": "text/plain"},
                ) as r:
                    assert (await r.json())["added"] == stock
                async with s.post(
                    f"{api}/offers/draft",
                    headers=auth,
                    json={
                        "title": name,
                        "price": {"amount": "1", "currency": "EUR"},
                        "deliveryType": "AUTO_KEY",
                        "keyPoolId": pool,
                    },
                ) as r:
                    offer = await r.json()
                async with s.post(
                    f"{api}/offers/publish", json={"offerId": offer["id"]}, headers=auth
                ) as r:
                    assert r.status == 200
                offers.append((pool, offer))
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
                await db.execute("ANALYZE")
            (_, mine), (pg_pool, pg_offer) = offers
            variables = {
                "pool": pg_pool,
                "offer": pg_offer["id"],
                "seller": pg_offer["sellerId"],
                "buyer": pg_offer["sellerId"],
            }
            rows = []
            for clients in CLIENTS:
                app = await autokey_run(api, buyer, mine["id"], clients)
                raw = await asyncio.to_thread(pgbench_run, url, variables, clients)
                rows.append((clients, app, raw))
    print(
        "clients | autokey orders/s | create p50/p99 ms | pay p50/p99 ms | fulfill p50/p99 ms"
        " | pgbench orders/s | pgbench flow avg ms | ratio"
    )
    for clients, app, raw in rows:
        print(
            f"{clients} | {app['orders_s']:.0f} | {app['create_p50']:.1f} / {app['create_p99']:.1f}"
            f" | {app['pay_p50']:.1f} / {app['pay_p99']:.1f}"
            f" | {app['fulfill_p50']:.1f} / {app['fulfill_p99']:.1f}"
            f" | {raw['orders_s']:.0f} | {raw['flow_ms']:.1f}"
            f" | {app['orders_s'] / raw['orders_s']:.2f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())
