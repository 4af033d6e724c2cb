"""The ceiling of any Python order server on this machine (issue 9, target 1): at
BENCH_CLIENTS concurrent clients, side by side on one scratch database migrated by autokey:

  pgbench        `order_flow.sql`, as orders_bench runs it (before and after the servers);
  plain N        a minimal aiohttp + psycopg server (no auth, logging, idempotency or audit)
                 in N processes sharing the port (SO_REUSEPORT): each call runs that step's
                 statements of `order_flow.sql` verbatim in one pipelined transaction;
  lean 1         plain 1 straight over libpq (`psycopg.pq`): the call's statements prepared on
                 each connection when it opens, BEGIN, them and COMMIT sent at once, and one
                 wait for all the answers (psycopg's pipeline waits to send each statement and
                 again to fetch each): what a leaner driver than psycopg's would give;
  group N        the same server with group commit: the calls of one kind waiting at the same
                 moment share one transaction (creates share one SKIP LOCKED claim), and each
                 call is answered from its own share (out of stock or unknown order per call);
  autokey        `autokey serve` with its default workers.

Every server is driven by orders_bench's load generator (create -> pay -> fulfill over HTTP,
JSON in and out). The one change to `order_flow.sql` in `plain`: the order id is generated in
Python instead of by `gen_random_uuid()`, so a create is one flight (pgbench needs the id back
before the claim). Run from the repository root: `.venv/bin/python bench/ceiling_bench.py`.
Settings (environment):
  BENCH_CLIENTS=32       concurrent clients
  BENCH_PRIVATE_PG=auto  the PostgreSQL server: auto runs on a private instance (initdb in a
                         temporary directory, autovacuum on) when BENCH_POSTGRES_URL's server
                         has autovacuum off; 1 always, 0 never (_harness.admin_server)
  BENCH_SECONDS=20       measured seconds per side (after BENCH_WARMUP=3 s)
  BENCH_GROUP_LANES=1    group commit: transactions of one kind in flight at once per process
  BENCH_LOADGEN=aiohttp  orders_bench's load generator: aiohttp, or native (bench/loadgen.c)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
from aiohttp import web
from psycopg import pq
from psycopg_pool import AsyncConnectionPool

sys.path.insert(0, os.path.dirname(__file__))
from _harness import (
    analyze_filled,
    bench_database,
    cli,
    environment,
    free_port,
    process_tree,
    server,
    token,
)
from orders_bench import CALLS, SCRIPT, SECONDS, WARMUP, autokey_run, pgbench_run, setup

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
LANES = int(os.environ.get("BENCH_GROUP_LANES", "1"))
SIDES = (("plain", 1), ("lean", 1), ("plain", 2), ("group", 1), ("group", 2))

_KEYS = """
INSERT INTO keys (id, pool_id, status, sealed, fingerprint, created_at)
SELECT gen_random_uuid(), %(pool)s::uuid, 'AVAILABLE', '\\x00',
       sha256(convert_to(%(pool)s::uuid::text || g, 'UTF8')), now() + g * interval '1 microsecond'
FROM generate_series(1, %(n)s) g
"""


def flow_steps() -> dict[str, list[str]]:
    """The statements of each transaction of `order_flow.sql`, with pgbench's ':variable'
    as psycopg's %(variable)s and the order id as a parameter."""
    with open(SCRIPT) as script:
        text = "\n".join(s for s in script.read().splitlines() if not s.startswith("--"))
    text = text.replace("gen_random_uuid()", "':order_id'").replace(
        "RETURNING id AS order_id \\gset", ";"
    )
    statements = [re.sub(r"':(\w+)'", r"%(\1)s", s.strip()) for s in text.split(";") if s.strip()]
    steps, current = [], []
    for statement in statements:
        if statement == "COMMIT":
            steps.append(current)
        elif statement == "BEGIN":
            current = []
        else:
            current.append(statement)
    return dict(zip(CALLS, steps, strict=True))


# Group commit: the same steps as sets of orders (ids in order, so batches lock in one order).
_GROUP_CREATE = [
    """INSERT INTO orders (id, buyer_id, seller_id, offer_id, pool_id, delivery_type, quantity,
         unit_price_amount, unit_price_currency, status, created_at, updated_at, reserved_until)
       SELECT o, %(buyer)s, %(seller)s, %(offer)s, %(pool)s, 'AUTO_KEY', 1, 1, 'EUR', 'PENDING',
              now(), now(), now() + interval '15 minutes'
       FROM unnest(%(ids)s::uuid[]) o""",
    """UPDATE keys k SET status = 'RESERVED', order_id = o.order_id, reserved_at = now()
       FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM (
               SELECT id, created_at FROM keys WHERE pool_id = %(pool)s AND status = 'AVAILABLE'
               ORDER BY created_at, id LIMIT cardinality(%(ids)s::uuid[])
               FOR UPDATE SKIP LOCKED) s) picked
       JOIN unnest(%(ids)s::uuid[]) WITH ORDINALITY o(order_id, n) USING (n)
       WHERE k.id = picked.id RETURNING k.order_id""",
]
_LOCK = "SELECT status FROM orders WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE"
_GROUP_PAY = [
    _LOCK,
    """UPDATE orders SET status = 'PAID', paid_at = now(), updated_at = now()
       WHERE id = ANY(%(ids)s) RETURNING id""",
]
_GROUP_FULFILL = [
    _LOCK,
    """UPDATE keys SET status = 'DELIVERED', delivered_at = now()
       WHERE order_id = ANY(%(ids)s) AND status = 'RESERVED'""",
    """UPDATE orders SET status = 'FULFILLED', fulfilled_at = now(), updated_at = now()
       WHERE id = ANY(%(ids)s) RETURNING id""",
    "SELECT order_id, id, sealed FROM keys WHERE order_id = ANY(%(ids)s)",
]


class Batcher:
    """Calls submitted while a lane is busy wait together; a free lane takes all of them."""

    def __init__(self, run: Callable[[list[Any]], Awaitable[list[Any]]]) -> None:
        self._run, self._waiting, self._wake, self._lanes = run, [], asyncio.Event(), []

    async def submit(self, item: Any) -> Any:
        if not self._lanes:
            self._lanes = [asyncio.create_task(self._lane()) for _ in range(LANES)]
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._wake.set()
        return await future

    async def _lane(self) -> None:
        while True:
            await self._wake.wait()
            batch, self._waiting = self._waiting, []
            self._wake.clear()
            if not batch:
                continue
            try:
                answers = await self._run([item for item, _ in batch])
            except Exception as exc:  # a failed transaction fails its batch, nothing else
                for _, future in batch:
                    future.set_exception(exc)
            else:
                for (_, future), answer in zip(batch, answers, strict=True):
                    future.set_result(answer)


async def pipelined(pool: AsyncConnectionPool, statements: list[str], params: dict) -> list:
    """One transaction in one flight: the cursors of `statements`, their results fetched.
    (psycopg's `transaction()` would sync after BEGIN, before and after COMMIT: 4 flights.)"""
    async with pool.connection() as conn, conn.pipeline():
        await conn.execute("BEGIN")
        cursors = [await conn.execute(sql, params) for sql in statements]
        await conn.execute("COMMIT")
    return cursors


def numbered(statement: str) -> tuple[str, list[str]]:
    """`statement` with psycopg's %(name)s as $1, $2, ... and the names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return re.sub(r"%\((\w+)\)s", number, statement), names


async def _ready(conn: psycopg.AsyncConnection, read: bool) -> None:
    loop, fd = asyncio.get_running_loop(), conn.pgconn.socket
    future = loop.create_future()
    (loop.add_reader if read else loop.add_writer)(fd, future.set_result, None)
    try:
        await future
    finally:
        (loop.remove_reader if read else loop.remove_writer)(fd)


async def lean_pipelined(
    pool: AsyncConnectionPool, call: str, statements: list[tuple[str, list[str]]], params: dict
) -> list[pq.abc.PGresult]:
    """`pipelined` straight over libpq (`psycopg.pq`): BEGIN, the call's statements (prepared
    on every connection when it opens) and COMMIT sent at once, and one wait for the answers,
    where psycopg's pipeline waits once to send each statement and again to fetch each."""
    async with pool.connection() as conn:
        pg = conn.pgconn
        pg.enter_pipeline_mode()
        try:
            pg.send_query_params(b"BEGIN", None)
            for i, (_, names) in enumerate(statements):
                args = [str(params[name]).encode() for name in names]
                pg.send_query_prepared(f"{call}{i}".encode(), args)
            pg.send_query_params(b"COMMIT", None)
            pg.pipeline_sync()
            while pg.flush():
                await _ready(conn, read=False)
            results, current, error = [], 0, None
            while True:
                await _ready(conn, read=True)
                pg.consume_input()
                while not pg.is_busy():
                    result = pg.get_result()
                    if result is None:
                        if not current:
                            break
                        current = 0
                    elif result.status == pq.ExecStatus.PIPELINE_SYNC:
                        if error is not None:  # the pool rolls the transaction back
                            raise psycopg.errors.error_from_result(error)
                        return results[1:-1]
                    elif result.status == pq.ExecStatus.FATAL_ERROR:
                        error, current = result, 1
                    else:
                        results.append(result)
                        current = 1
        finally:
            pg.exit_pipeline_mode()


def minimal_app(url: str, mode: str, pool_size: int) -> web.Application:
    steps, offers = flow_steps(), {}
    lean = {call: [numbered(s) for s in statements] for call, statements in steps.items()}

    async def prepare(conn: psycopg.AsyncConnection) -> None:
        for call, statements in lean.items():
            for i, (statement, _) in enumerate(statements):
                await conn.execute(f"PREPARE {call}{i} AS {statement}")

    pool = AsyncConnectionPool(
        url, min_size=pool_size, max_size=pool_size, open=False, kwargs={"autocommit": True},
        configure=prepare if mode == "lean" else None,
    )  # fmt: skip

    async def offer_params(offer: str) -> dict[str, Any]:
        if offer not in offers:
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT key_pool_id, seller_id FROM offers WHERE id = %s",
                                         (offer,))  # fmt: skip
                pool_id, seller = await cur.fetchone()
            offers[offer] = {"offer": offer, "pool": pool_id, "seller": seller, "buyer": seller}
        return offers[offer]

    async def create_one(params: dict[str, Any]) -> bool:
        return (await pipelined(pool, steps["create"], params))[1].rowcount == 1

    async def pay_one(order: uuid.UUID) -> bool:
        cursors = await pipelined(pool, steps["pay"], {"order_id": order})
        return await cursors[0].fetchone() is not None

    async def fulfill_one(order: uuid.UUID) -> list[tuple]:
        return await (await pipelined(pool, steps["fulfill"], {"order_id": order}))[3].fetchall()

    async def create_group(calls: list[dict[str, Any]]) -> list[bool]:
        claimed = set()
        for offer in {c["offer"] for c in calls}:
            ids = [c["order_id"] for c in calls if c["offer"] == offer]
            cursors = await pipelined(pool, _GROUP_CREATE, {**offers[offer], "ids": ids})
            claimed |= {row[0] for row in await cursors[1].fetchall()}
        return [c["order_id"] in claimed for c in calls]

    async def pay_group(ids: list[uuid.UUID]) -> list[bool]:
        cursors = await pipelined(pool, _GROUP_PAY, {"ids": sorted(ids)})
        paid = {row[0] for row in await cursors[1].fetchall()}
        return [i in paid for i in ids]

    async def fulfill_group(ids: list[uuid.UUID]) -> list[list[tuple]]:
        cursors = await pipelined(pool, _GROUP_FULFILL, {"ids": sorted(ids)})
        keys: dict[uuid.UUID, list[tuple]] = {i: [] for i in ids}
        for order, key, sealed in await cursors[3].fetchall():
            keys[order].append((key, sealed))
        return [keys[i] for i in ids]

    async def create_lean(params: dict[str, Any]) -> bool:
        return (await lean_pipelined(pool, "create", lean["create"], params))[1].command_tuples == 1

    async def pay_lean(order: uuid.UUID) -> bool:
        results = await lean_pipelined(pool, "pay", lean["pay"], {"order_id": order})
        return results[0].ntuples == 1

    async def fulfill_lean(order: uuid.UUID) -> list[tuple]:
        keys = (await lean_pipelined(pool, "fulfill", lean["fulfill"], {"order_id": order}))[3]
        return [
            (keys.get_value(i, 0).decode(), bytes.fromhex(keys.get_value(i, 1)[2:].decode()))
            for i in range(keys.ntuples)
        ]

    run = {"create": create_one, "pay": pay_one, "fulfill": fulfill_one}
    if mode == "lean":
        run = {"create": create_lean, "pay": pay_lean, "fulfill": fulfill_lean}
    if mode == "group":
        groups = {"create": create_group, "pay": pay_group, "fulfill": fulfill_group}
        run = {call: Batcher(group).submit for call, group in groups.items()}

    async def create(request: web.Request) -> web.Response:
        params = {**await offer_params((await request.json())["offerId"]), "order_id": uuid.uuid4()}
        if not await run["create"](params):
            return web.json_response({"error": "out of stock"}, status=409)
        return web.json_response({"id": str(params["order_id"]), "status": "PENDING"}, status=201)

    async def pay(request: web.Request) -> web.Response:
        order = uuid.UUID(request.match_info["id"])
        if not await run["pay"](order):
            return web.json_response({"error": "no such order"}, status=404)
        return web.json_response({"id": str(order), "status": "PAID"})

    async def fulfill(request: web.Request) -> web.Response:
        order = uuid.UUID(request.match_info["id"])
        keys = [
            {"id": str(key), "sealed": sealed.hex()} for key, sealed in await run["fulfill"](order)
        ]
        return web.json_response({"id": str(order), "status": "FULFILLED", "keys": keys})

    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        await pool.open(wait=True)
        yield
        await pool.close()

    app = web.Application()
    app.cleanup_ctx.append(lifetime)
    app.router.add_post("/orders", create)
    app.router.add_post("/orders/{id}/pay", pay)
    app.router.add_post("/orders/{id}/fulfill", fulfill)
    return app


@contextlib.asynccontextmanager
async def minimal_server(
    url: str, mode: str, processes: int
) -> AsyncIterator[tuple[str, list[int]]]:
    """`processes` minimal servers on one free port; yields (base URL, pids)."""
    port = free_port()
    size = str(max(CLIENTS // processes, 1) if mode in ("plain", "lean") else 3 * LANES)
    command = [sys.executable, __file__, "serve", url, mode, str(port), size]
    started = [
        await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
        for _ in range(processes)
    ]
    try:
        for process in started:
            assert process.stdout is not None
            assert (await process.stdout.readline()).strip() == b"ready", "server did not start"
        yield f"http://127.0.0.1:{port}", [p.pid for p in started]
    finally:
        for process in started:
            process.terminate()
            await process.wait()


def serve(url: str, mode: str, port: str, pool_size: str) -> None:
    """One minimal server process; says "ready" once it listens."""
    web.run_app(
        minimal_app(url, mode, int(pool_size)), host="127.0.0.1", port=int(port),
        reuse_port=True, access_log=None, print=lambda _: print("ready", flush=True),
    )  # fmt: skip


def row(name: str, run: dict[str, Any], baseline: float) -> str:
    """One side's line. pgbench's backends exit with it, so its PostgreSQL CPU is the machine's
    less pgbench's own (anything else running on the machine included)."""
    flows, cores = run["orders_s"], run["cores"]
    if "calls_avg" in run:
        calls = " / ".join(f"{ms:.1f}" for ms in run["calls_avg"]) + " (avg)"
        cpu = (0.0, cores["machine"] - cores["children"], cores["children"])
    else:
        calls = " / ".join(f"{run[f'{c}_p50']:.1f}-{run[f'{c}_p99']:.1f}" for c in CALLS)
        cpu = (cores["server"], cores["postgres"], cores["client"])
    per_flow = " / ".join(f"{c / flows * 1000:.2f}" for c in (*cpu, cores["machine"]))
    return f"{name:9} | {flows:5.0f} | {flows / baseline:5.2f}x | {calls} | {per_flow}"


async def main() -> None:
    stock, load = int(3000 * (SECONDS + WARMUP)), os.getloadavg()
    async with bench_database() as url:
        env = environment(url)
        cli("migrate", env=env)
        seller, buyer = token("seller", env), token("buyer", env)
        async with server(env) as (api, pid):
            pids = process_tree(pid)
            _, autokey_offer = await setup(api, seller, "autokey", stock)
            offers = {}
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
                for name in ("pgbench", "pgbench 2", *(f"{mode} {n}" for mode, n in SIDES)):
                    pool, offers[name] = await setup(api, seller, name, 0)
                    offers[name]["pool"] = pool
                    await db.execute(_KEYS, {"pool": pool, "n": stock})
                await analyze_filled(db)
                await db.execute("CHECKPOINT")

            async def pgbench(name: str) -> dict[str, Any]:
                offer = offers[name]
                variables = {"pool": offer["pool"], "offer": offer["id"],
                             "seller": offer["sellerId"], "buyer": offer["sellerId"]}  # fmt: skip
                return await asyncio.to_thread(pgbench_run, url, variables, CLIENTS, [])

            runs = {"pgbench": await pgbench("pgbench")}
            for mode, n in SIDES:
                async with minimal_server(url, mode, n) as (base, server_pids):
                    offer = offers[f"{mode} {n}"]["id"]
                    runs[f"{mode} {n}"] = await autokey_run(
                        [base], server_pids, buyer, offer, CLIENTS, SECONDS
                    )
            offer = autokey_offer["id"]
            runs["autokey"] = await autokey_run([api], pids, buyer, offer, CLIENTS, SECONDS)
            runs["pgbench 2"] = await pgbench("pgbench 2")
    baseline = (runs["pgbench"]["orders_s"] + runs["pgbench 2"]["orders_s"]) / 2
    print(
        f"{CLIENTS} clients, {SECONDS:.0f} s per side after {WARMUP:.0f} s warm-up;"
        f" ratio to the mean of the two pgbench runs ({baseline:.0f} flows/s); autokey"
        f" with {max(len(pids) - 1, 1)} worker(s), group commit with {LANES} lane(s)"
    )
    print(f"load average before / after: {load[0]:.2f} / {os.getloadavg()[0]:.2f}")
    print(
        "side      | flows/s | ratio | create / pay / fulfill ms p50-p99 (pgbench: avg)"
        " | CPU ms per flow: server / postgres / load generator (pgbench) / machine"
    )
    for name, run in runs.items():
        print(row(name, run, baseline))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(*sys.argv[2:])
    else:
        asyncio.run(main())
