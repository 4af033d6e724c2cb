"""Complete orders (create -> pay -> fulfill) over HTTP against `autokey serve` on PostgreSQL
at 1, 8 and 32 concurrent clients, beside pgbench running the plain per-order SQL
(`order_flow.sql`) on the same database in the same run.

Run from the repository root: `.venv/bin/python bench/orders_bench.py` (about 3 minutes).
Settings (environment):
  BENCH_CLIENTS=1,8,32   concurrency levels
  BENCH_PRIVATE_PG=auto  the PostgreSQL server: auto runs on a private instance (initdb in a
                         temporary directory, autovacuum on) when BENCH_POSTGRES_URL's server
                         has autovacuum off; 1 always, 0 never (_harness.admin_server)
  BENCH_SECONDS=20       measured seconds per level and side (after BENCH_WARMUP=3 s)
  BENCH_POOL_SIZE        AUTOKEY_DB_POOL_SIZE for the server (default: autokey's, 10)
  BENCH_POOL_KEYS        keys uploaded to each side's key pool (default: what the levels
                         use, 40,000 per level); e.g. 1000000 for a large seller's pool
  BENCH_GROUP_COMMIT=0   AUTOKEY_GROUP_COMMIT for the server (default: autokey's, on)
  BENCH_SERVERS=1        autokey serve processes on the same database (clients alternate)
  BENCH_WORKERS          `autokey serve --workers` of each: e.g. 1; unset: autokey's default
                         (one worker per CPU on PostgreSQL)
  BENCH_PROFILE=1        afterwards, one more run at the highest concurrency under py-spy
                         (on PATH or in .venv/bin), summarised by where the server spends
                         CPU; 0 skips it
  BENCH_PROFILE_RATE=100 py-spy's samples per second
  BENCH_PROFILE_OUT=path keep py-spy's raw collapsed stacks there
  BENCH_VERBOSE=1        print pgbench's full reports
  BENCH_LOADGEN=aiohttp  the load generator: aiohttp (Python, in this process) or native
                         (bench/loadgen.c, built with cc: the same flow and checks at a
                         fraction of the CPU; pgbench's own client is native)
  BENCH_FLOOR=1          afterwards, autokey on memory:// (one worker, no database) at the
                         same levels: what autokey's own work allows with a store that costs
                         no round trip. Its tokens are looked up on every call (PostgreSQL
                         serves them from a cache), so the floor is slightly pessimistic
  BENCH_ROUND_TRIPS=200  first, that many sequential orders (1 client) with the server under
                         strace: round trips to PostgreSQL per call, and pgbench's per order
                         counted the same way (docs/benchmarks.md); 0 skips it
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psycopg

sys.path.insert(0, os.path.dirname(__file__))
from _harness import (
    LOADGEN,
    WORKERS,
    CpuMeter,
    analyze_filled,
    bench_database,
    cli,
    count_round_trips,
    environment,
    native_flows,
    process_tree,
    server,
    strace_command,
    token,
    traced,
)

SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "3"))
CLIENTS = [int(c) for c in os.environ.get("BENCH_CLIENTS", "1,8,32").split(",")]
SERVERS = int(os.environ.get("BENCH_SERVERS", "1"))
POOL_SIZE = os.environ.get("BENCH_POOL_SIZE")
GROUP_COMMIT = os.environ.get("BENCH_GROUP_COMMIT")
PROFILE = os.environ.get("BENCH_PROFILE", "1") == "1"
PROFILE_RATE = os.environ.get("BENCH_PROFILE_RATE", "100")
ROUND_TRIP_ORDERS = int(os.environ.get("BENCH_ROUND_TRIPS", "200"))
FLOOR = os.environ.get("BENCH_FLOOR", "0") == "1"
PGBENCH = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
SCRIPT = os.path.join(os.path.dirname(__file__), "order_flow.sql")
CALLS = ("create", "pay", "fulfill")
STOCK_PER_LEVEL = 40_000
POOL_KEYS = int(os.environ.get("BENCH_POOL_KEYS", "0"))


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
            fulfilled = await r.json()
            assert r.status == 200, fulfilled
            assert len(fulfilled["keys"]) == 1, fulfilled
        t3 = time.perf_counter()
        for call, spent in zip(CALLS, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            latencies[call].append(spent * 1000)
        done += 1
    return done


async def round_trips(
    api: str, pids: list[int], buyer: str, offer: str, url: str, variables: dict[str, str]
) -> str:
    """Round trips to PostgreSQL per call, counted with strace on the server (one client, one
    call at a time, so nothing is batched), and per order for pgbench the same way."""
    n, auth = ROUND_TRIP_ORDERS, {"Authorization": f"Bearer {buyer}"}
    port, per_call = urlsplit(url).port or 5432, {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{api}/orders", headers=auth) as r:  # principal cached
            assert r.status == 200
        async with traced(pids, port) as counted:
            ids = []
            for _ in range(n):
                async with session.post(
                    f"{api}/orders", json={"offerId": offer}, headers=auth
                ) as r:
                    assert r.status == 201, await r.text()
                    ids.append((await r.json())["id"])
        per_call["create"] = counted[0] / n
        for call in ("pay", "fulfill"):
            async with traced(pids, port) as counted:
                for order_id in ids:
                    async with session.post(f"{api}/orders/{order_id}/{call}", headers=auth) as r:
                        assert r.status == 200, await r.text()
            per_call[call] = counted[0] / n
    with tempfile.TemporaryDirectory() as tmp:
        args = [PGBENCH, "-n", "-f", SCRIPT, "-c", "1", "-t", str(n)]
        for name, value in variables.items():
            args += ["-D", f"{name}={value}"]
        await asyncio.to_thread(
            subprocess.run, [*strace_command(f"{tmp}/trace"), *args, url], check=True,
            capture_output=True,
        )  # fmt: skip
        pgbench = await asyncio.to_thread(count_round_trips, f"{tmp}/trace", port) / n
    calls = ", ".join(f"{c} {v:.2f}" for c, v in per_call.items())
    return (
        f"round trips to PostgreSQL ({n} orders, strace): autokey {calls},"
        f" per order {sum(per_call.values()):.2f}; pgbench per order {pgbench:.2f}"
    )


def _pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def autokey_run(
    apis: list[str], pids: list[int], buyer: str, offer: str, clients: int, seconds: float
) -> dict[str, Any]:
    if LOADGEN == "native":
        run = await native_flows("orders", apis, pids, buyer, offer, clients, WARMUP, seconds)
        return {"orders_s": run.pop("flows_s"), **run}
    latencies: dict[str, list[float]] = {c: [] for c in CALLS}
    connector = aiohttp.TCPConnector(limit=clients)
    meter = CpuMeter(pids)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm_until = time.perf_counter() + WARMUP
        await asyncio.gather(
            *(
                _client(
                    session, apis[i % len(apis)], buyer, offer, warm_until, {c: [] for c in CALLS}
                )
                for i in range(clients)
            )
        )
        meter.start()
        started = time.perf_counter()
        done = await asyncio.gather(
            *(
                _client(session, apis[i % len(apis)], buyer, offer, started + seconds, latencies)
                for i in range(clients)
            )
        )
        elapsed = time.perf_counter() - started
        cores = meter.stop()
    return {
        "orders_s": sum(done) / elapsed,
        "orders": sum(done),
        "cores": cores,
        **{f"{c}_p50": _pct(v, 50) for c, v in latencies.items()},
        **{f"{c}_p99": _pct(v, 99) for c, v in latencies.items()},
    }


def _call_latencies(report: str) -> list[float]:
    """Average ms per call (BEGIN ... COMMIT block) from pgbench -r's per-statement table."""
    calls: list[float] = []
    current = None
    table = report.split("statement latencies in milliseconds", 1)[1].splitlines()[1:]
    for line in table:
        match = re.match(r"\s+([\d.]+)\s+\d+\s+(.*)$", line)
        if match is None:
            continue
        ms, statement = float(match[1]), match[2].strip().upper()
        if statement.startswith("BEGIN"):
            current = 0.0
        if current is not None:
            current += ms
        if statement.startswith("COMMIT") and current is not None:
            calls.append(current)
            current = None
    return calls


def pgbench_run(
    url: str, variables: dict[str, str], clients: int, pids: list[int], script: str = SCRIPT
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as logs:
        args = [PGBENCH, "-n", "-f", script, "-c", str(clients), "-j", str(min(clients, 2))]
        args += ["-T", str(round(SECONDS)), "-r", "-l", "--log-prefix", f"{logs}/tx"]
        for name, value in variables.items():
            args += ["-D", f"{name}={value}"]
        meter = CpuMeter(pids)
        meter.start()
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
        cores = meter.stop()
        flows = []
        for path in glob.glob(f"{logs}/tx*"):
            with open(path) as log:
                flows += [int(line.split()[2]) / 1000 for line in log]
    if os.environ.get("BENCH_VERBOSE"):
        print(out)
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    failed = re.search(r"number of failed transactions: (\d+)", out)
    per_call = _call_latencies(out)
    return {
        "orders_s": tps,
        "failed": int(failed.group(1)) if failed else 0,
        "calls_avg": per_call,
        "flow_p50": _pct(flows, 50),
        "flow_p99": _pct(flows, 99),
        "cores": cores,
    }


async def stock_check(url: str, pools: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Per pool: (keys still AVAILABLE, orders of that pool without a DELIVERED key)."""
    result = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        for name, pool in pools.items():
            cur = await db.execute(
                "SELECT (SELECT count(*) FROM keys WHERE pool_id = %(p)s AND status = 'AVAILABLE'),"
                " (SELECT count(*) FROM orders o WHERE o.pool_id = %(p)s AND NOT EXISTS ("
                "   SELECT 1 FROM keys k WHERE k.order_id = o.id AND k.status = 'DELIVERED'))",
                {"p": pool},
            )
            result[name] = await cur.fetchone()
    return result


async def profile_run(
    apis: list[str], pids: list[int], buyer: str, offer: str, clients: int
) -> str:
    """The same load under py-spy (sampling the first server and its workers): where its CPU
    goes."""
    # On PATH, or beside this Python (`.venv/bin/py-spy` when the venv is not activated).
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if spy is None:
        return "py-spy not found: no profile"
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/stacks.txt"
        duration = round(WARMUP + SECONDS)
        recorder = await asyncio.create_subprocess_exec(
            spy, "record", "-r", PROFILE_RATE, "-f", "raw", "-o", out,
            "-d", str(duration), "-p", str(pids[0]), "--subprocesses",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        result = await autokey_run(apis, pids, buyer, offer, clients, SECONDS)
        await recorder.wait()
        if keep := os.environ.get("BENCH_PROFILE_OUT"):
            shutil.copyfile(out, keep)
        stacks = await asyncio.to_thread(_read_lines, out)
        summary = summarise_stacks(stacks)
    return f"{clients} clients under py-spy: {result['orders_s']:.0f} orders/s\n{summary}"


# Leaf-most matching frame decides where a CPU sample is charged (first rule that matches).
BUCKETS = (
    ("AES-GCM seal/open, HMAC, token hash", ("autokey/adapters/crypto.py", "cryptography/")),
    ("psycopg + pool (driver, (de)serialisation)", ("psycopg",)),
    ("json encode/decode", ("json/",)),
    ("cattrs / attrs (un)structuring", ("cattrs/", "cattr/", "attr/", "attrs/")),
    ("structlog", ("structlog/",)),
    ("prometheus metrics", ("prometheus_client/",)),
    ("dependency-injector", ("dependency_injector/",)),
    ("aiohttp HTTP server", ("aiohttp/", "multidict/", "yarl/")),
    ("asyncio event loop, sockets", ("asyncio/", "selectors.py", "socket.py")),
    ("autokey code (domain, adapters, web)", ("autokey/",)),
)
# Inclusive shares: samples whose stack contains the function.
INCLUSIVE = (
    ("bearer-token lookup (authenticate)", "authenticate ("),
    ("create_in (order + claim + audit)", "create_in ("),
    ("pay_in", "pay_in ("),
    ("fulfill_in (deliver + reveal)", "fulfill_in ("),
    ("audit log appends", "append (autokey/adapters/postgres/store.py"),
    ("store.transaction (checkout, BEGIN/COMMIT)", "transaction ("),
    ("any request handler (the rest: startup, sweeps, idle loop)", "observability_middleware ("),
)


def _read_lines(path: str) -> list[str]:
    with open(path) as text:
        return text.read().splitlines()


def summarise_stacks(lines: list[str]) -> str:
    by_bucket: collections.Counter[str] = collections.Counter()
    by_leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        by_leaf[frames[-1]] += count
        for name, needle in INCLUSIVE:
            if needle in stack:
                inclusive[name] += count
        for frame in reversed(frames):
            bucket = next((b for b, paths in BUCKETS if any(p in frame for p in paths)), None)
            if bucket is not None:
                by_bucket[bucket] += count
                break
        else:
            by_bucket["other (stdlib, startup)"] += count
    if not total:
        return "no samples"
    rows = [f"  {n / total:6.1%}  {name}" for name, n in by_bucket.most_common()]
    rows.append("inclusive (stack contains):")
    rows += [f"  {inclusive[name] / total:6.1%}  {name}" for name, _ in INCLUSIVE]
    rows.append("top leaf frames:")
    rows += [f"  {n / total:6.1%}  {frame[:110]}" for frame, n in by_leaf.most_common(12)]
    return f"server CPU samples: {total} (charged to the leaf-most known frame)\n" + "\n".join(rows)


async def setup(
    api: str, seller: str, name: str, stock: int, **offer_fields: str
) -> tuple[str, dict[str, Any]]:
    """A pool of `stock` keys (text/plain upload) and its published AUTO_KEY offer."""
    auth = {"Authorization": f"Bearer {seller}"}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{api}/key-pools", json={"name": name}, headers=auth) as r:
            pool = (await r.json())["id"]
        keys = "".join(f"{name}-{i:07d}-KEY\n" for i in range(stock)).encode()
        if stock:
            async with s.post(
                f"{api}/key-pools/{pool}/keys/upload",
                data=keys,
                headers={**auth, "Content-Type": "text/plain"},
                timeout=aiohttp.ClientTimeout(total=900),
            ) as r:
                assert (await r.json())["added"] == stock
        offer_in = {
            "title": name,
            "price": {"amount": "1", "currency": "EUR"},
            "deliveryType": "AUTO_KEY",
            "keyPoolId": pool,
            **offer_fields,
        }
        async with s.post(f"{api}/offers/draft", headers=auth, json=offer_in) as r:
            offer = await r.json()
        async with s.post(
            f"{api}/offers/publish", json={"offerId": offer["id"]}, headers=auth
        ) as r:
            assert r.status == 200, await r.text()
    return pool, offer


async def floor_runs() -> dict[int, dict[str, Any]]:
    """`autokey serve --workers 1` on memory:// at each level (BENCH_FLOOR)."""
    tokens: dict[str, str] = {}
    async with server(environment("memory://"), "1", tokens=tokens) as (api, pid):
        stock = STOCK_PER_LEVEL * len(CLIENTS)
        _, offer = await setup(api, tokens["SELLER"], "floor", stock)
        return {
            clients: await autokey_run([api], [pid], tokens["BUYER"], offer["id"], clients, SECONDS)
            for clients in CLIENTS
        }


def _cores(c: dict[str, float], *parts: str) -> str:
    return " ".join(f"{p}={c[p]:.2f}" for p in parts)


async def main() -> None:
    async with bench_database() as url:
        extra = {"AUTOKEY_DB_POOL_SIZE": POOL_SIZE} if POOL_SIZE else {}
        if GROUP_COMMIT is not None:
            extra["AUTOKEY_GROUP_COMMIT"] = GROUP_COMMIT
        env = environment(url, **extra)
        cli("migrate", env=env)
        seller, buyer = token("seller", env), token("buyer", env)
        async with contextlib.AsyncExitStack() as stack:
            started = [await stack.enter_async_context(server(env)) for _ in range(SERVERS)]
            apis = [a for a, _ in started]
            pids = [worker for _, p in started for worker in process_tree(p)]
            stock = STOCK_PER_LEVEL * (len(CLIENTS) + int(PROFILE)) + ROUND_TRIP_ORDERS
            stock = max(stock, POOL_KEYS)
            app_pool, app_offer = await setup(apis[0], seller, "autokey", stock)
            pg_pool, pg_offer = await setup(apis[0], seller, "pgbench", stock)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
                await analyze_filled(db)
                await db.execute("CHECKPOINT")
            variables = {
                "pool": pg_pool,
                "offer": pg_offer["id"],
                "seller": pg_offer["sellerId"],
                "buyer": pg_offer["sellerId"],
            }
            trips = ""
            if ROUND_TRIP_ORDERS:
                trips = await round_trips(
                    apis[0], process_tree(pids[0]), buyer, app_offer["id"], url, variables
                )
            rows = []
            for clients in CLIENTS:
                app = await autokey_run(apis, pids, buyer, app_offer["id"], clients, SECONDS)
                raw = await asyncio.to_thread(pgbench_run, url, variables, clients, pids)
                rows.append((clients, app, raw))
            checked = await stock_check(url, {"autokey": app_pool, "pgbench": pg_pool})
            profile = ""
            if PROFILE:
                profile = await profile_run(apis, pids, buyer, app_offer["id"], max(CLIENTS))
        floor = await floor_runs() if FLOOR else {}
    per_server = len(pids) // SERVERS  # a supervisor and its workers, or one process
    workers = per_server - 1 if per_server > 1 else 1
    print(
        f"{SERVERS} autokey serve process(es) of {workers} worker(s)"
        f" (BENCH_WORKERS={WORKERS or 'unset: autokey default'}),"
        f" AUTOKEY_DB_POOL_SIZE={POOL_SIZE or 'default (10)'},"
        f" AUTOKEY_GROUP_COMMIT={GROUP_COMMIT or 'default (1)'},"
        f" {SECONDS:.0f} s per level after {WARMUP:.0f} s warm-up"
    )
    print(
        "clients | autokey orders/s | create p50/p99 ms | pay p50/p99 ms | fulfill p50/p99 ms"
        " | pgbench orders/s | pgbench create/pay/fulfill avg ms | pgbench flow p50/p99 ms"
        " | ratio"
    )
    for clients, app, raw in rows:
        calls = " / ".join(f"{ms:.2f}" for ms in raw["calls_avg"])
        print(
            f"{clients} | {app['orders_s']:.0f} | {app['create_p50']:.2f} / {app['create_p99']:.1f}"
            f" | {app['pay_p50']:.2f} / {app['pay_p99']:.1f}"
            f" | {app['fulfill_p50']:.2f} / {app['fulfill_p99']:.1f}"
            f" | {raw['orders_s']:.0f} | {calls}"
            f" | {raw['flow_p50']:.1f} / {raw['flow_p99']:.1f}"
            f" | {app['orders_s'] / raw['orders_s']:.2f}x"
        )
    for clients, app, raw in rows:
        if clients == 1:  # issue 9, target 1: p50 per call at most 1.5x pgbench's average
            shares = " / ".join(
                f"{app[f'{call}_p50'] / (1.5 * avg):.2f}"
                for call, avg in zip(CALLS, raw["calls_avg"], strict=True)
            )
            print(f"1 client, p50 per call / (1.5 x pgbench's average per call): {shares}")
    print("CPU cores used on average (of 2):")
    for clients, app, raw in rows:
        print(
            f"  {clients} clients: autokey run"
            f" {_cores(app['cores'], 'server', 'client', 'postgres', 'machine')}"
            f" (per order: server {app['cores']['server'] / app['orders_s'] * 1000:.1f} ms,"
            f" postgres {app['cores']['postgres'] / app['orders_s'] * 1000:.1f} ms CPU)"
            f" | pgbench run pgbench={raw['cores']['children']:.2f}"
            f" machine={raw['cores']['machine']:.2f} (failed transactions: {raw['failed']})"
        )
    if floor:
        print(
            "autokey on memory:// (1 worker, no database): clients | orders/s | to pgbench"
            " | create / pay / fulfill p50 / p99 ms | server CPU ms per order"
        )
    for clients, _, raw in rows:
        if (free := floor.get(clients)) is not None:
            p50 = " / ".join(f"{free[f'{c}_p50']:.2f}" for c in CALLS)
            p99 = " / ".join(f"{free[f'{c}_p99']:.1f}" for c in CALLS)
            print(
                f"  {clients} | {free['orders_s']:.0f} | {free['orders_s'] / raw['orders_s']:.2f}x"
                f" | {p50} / {p99}"
                f" | {free['cores']['server'] / free['orders_s'] * 1000:.2f}"
            )
    if trips:
        print(trips)
    for name, (available, undelivered) in checked.items():
        print(
            f"{name} pool after the runs: {available:,} keys left,"
            f" {undelivered} orders without a delivered key"
        )
    if profile:
        print(profile)


if __name__ == "__main__":
    asyncio.run(main())
