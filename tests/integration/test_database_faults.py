"""Acceptance: a real `autokey serve` on PostgreSQL, order traffic, and the network between
them cut (RST) and then black-holed (sockets open, nothing forwarded) by a loopback proxy.

Every request ends within the configured bound, failing with 503 store_unavailable and
Retry-After; clients retry with their Idempotency-Keys; afterwards no key is lost, none is
sold twice, every FULFILLED order has its key and no idempotency record is left in flight."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import attrs
import psycopg
import pytest

from tests.integration.server import autokey, serve, server_env, token
from tests.proxy import TcpProxy, in_front_of
from tests.services import scratch_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

POOL_TIMEOUT_S, STATEMENT_TIMEOUT_MS, LEASE_S = 2, 1000, 3
# The bound the settings promise: a pool checkout, then one statement plus the client's
# grace second. SLACK absorbs a loaded 2-core machine, and stays well under BLACKHOLE_S, so a
# request hanging for the whole partition cannot pass.
BOUND_S = POOL_TIMEOUT_S + STATEMENT_TIMEOUT_MS / 1000 + 1
SLACK_S = 5.0
CUT_S, BLACKHOLE_S, CALM_S = 4.0, 15.0, 3.0
WORKERS, KEYS = 6, 3000
FLOW_DEADLINE_S = 90.0


@attrs.define
class Traffic:
    durations: list[tuple[float, int, str]] = attrs.Factory(list)
    """(seconds, status, phase) of every request."""
    problems: list[str] = attrs.Factory(list)
    delivered: list[str] = attrs.Factory(list)
    order_ids: list[str] = attrs.Factory(list)
    phase: str = "calm"


@asynccontextmanager
async def proxied_server() -> AsyncIterator[tuple[str, str, TcpProxy, str, str]]:
    """(base URL of autokey serve, direct database URL, the proxy between them, a seller's
    token, a buyer's token)."""
    async with scratch_postgres() as url, in_front_of(url) as (proxied, proxy):
        env = server_env(
            proxied,
            AUTOKEY_DB_POOL_TIMEOUT_S=str(POOL_TIMEOUT_S),
            AUTOKEY_DB_CONNECT_TIMEOUT_S="2",
            AUTOKEY_DB_STATEMENT_TIMEOUT_MS=str(STATEMENT_TIMEOUT_MS),
            AUTOKEY_IDEMPOTENCY_LEASE_S=str(LEASE_S),
            AUTOKEY_RATE_LIMIT_WRITES="off",
            AUTOKEY_RATE_LIMIT_ORDERS="off",
        )
        direct = server_env(url)  # these CLI runs block this loop, so the proxy is bypassed
        autokey("migrate", env=direct)
        seller, buyer = token("seller", direct), token("buyer", direct)
        async with serve(env) as base:
            yield base, url, proxy, seller, buyer


async def _call(
    session: aiohttp.ClientSession,
    traffic: Traffic,
    method: str,
    url: str,
    headers: dict[str, str],
    **kwargs: Any,
) -> tuple[int, Any]:
    """One request, timed and checked: 503 and 409 answers must say when to retry."""
    started = time.monotonic()
    phase = traffic.phase
    async with session.request(method, url, headers=headers, **kwargs) as response:
        body = await response.json()
        status = response.status
        retry_after = response.headers.get("Retry-After")
    traffic.durations.append((time.monotonic() - started, status, phase))
    if status in (409, 503) and not (retry_after and retry_after.isdigit()):
        traffic.problems.append(f"{status} {body.get('code')} without Retry-After")
    return status, body


async def _until_done(
    session: aiohttp.ClientSession,
    traffic: Traffic,
    url: str,
    headers: dict[str, str],
    ok: int,
    **kwargs: Any,
) -> Any:
    """Retry one write with its Idempotency-Key, as a well-behaved client does."""
    deadline = time.monotonic() + FLOW_DEADLINE_S
    while time.monotonic() < deadline:
        status, body = await _call(session, traffic, "POST", url, headers, **kwargs)
        if status == ok:
            return body
        retryable = {503: ("store_unavailable", "stock_busy"), 409: ("idempotency_in_flight",)}
        if body.get("code") not in retryable.get(status, ()):
            traffic.problems.append(f"{url}: {status} {body}")
            return None
        await asyncio.sleep(min(float(body.get("retryAfterS") or 1), LEASE_S))
    traffic.problems.append(f"{url}: no success in {FLOW_DEADLINE_S} s")
    return None


async def _buyer(
    session: aiohttp.ClientSession,
    base: str,
    buyer: str,
    offer: str,
    worker: int,
    traffic: Traffic,
    stop: asyncio.Event,
) -> None:
    flow = 0
    while not stop.is_set():
        flow += 1

        def headers(step: str, flow: int = flow) -> dict[str, str]:
            return {
                "Authorization": f"Bearer {buyer}",
                "Idempotency-Key": f"{worker}-{flow}-{step}",
            }

        order = await _until_done(
            session, traffic, f"{base}/orders", headers("create"), 201, json={"offerId": offer}
        )
        if order is None:
            return
        traffic.order_ids.append(order["id"])
        for step in ("pay", "fulfill"):
            order = await _until_done(
                session, traffic, f"{base}/orders/{order['id']}/{step}", headers(step), 200
            )
            if order is None:
                return
        traffic.delivered.extend(k["key"] for k in order["keys"])
        await asyncio.sleep(0.1)


async def _stock(session: aiohttp.ClientSession, base: str, seller: str) -> str:
    auth = {"Authorization": f"Bearer {seller}"}
    async with session.post(f"{base}/key-pools", json={}, headers=auth) as r:
        pool = (await r.json())["id"]
    async with session.post(
        f"{base}/key-pools/{pool}/keys/upload",
        data="\n".join(f"FAULT-{i:05d}-KEY" for i in range(KEYS)),
        headers={**auth, "Content-Type": "text/plain"},
    ) as r:
        assert (await r.json())["added"] == KEYS
    draft = {
        "title": "Partition Simulator",
        "price": {"amount": "5.00", "currency": "EUR"},
        "deliveryType": "AUTO_KEY",
        "keyPoolId": pool,
    }
    async with session.post(f"{base}/offers/draft", json=draft, headers=auth) as r:
        offer = str((await r.json())["id"])
    async with session.post(f"{base}/offers/publish", json={"offerId": offer}, headers=auth) as r:
        assert r.status == 200
    return offer


async def _ledger(url: str) -> dict[str, Any]:
    """What the database itself says, read directly (not through the proxy)."""
    async with await psycopg.AsyncConnection.connect(url) as conn:

        async def rows(query: str) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query)  # type: ignore[arg-type]
            return await cur.fetchall()

        return {
            "keys": dict(await rows("SELECT status, count(*) FROM keys GROUP BY status")),
            "orders": dict(await rows("SELECT status, count(*) FROM orders GROUP BY status")),
            "short": await rows(
                "SELECT o.id FROM orders o LEFT JOIN keys k"
                " ON k.order_id = o.id AND k.status = 'DELIVERED'"
                " WHERE o.status = 'FULFILLED' GROUP BY o.id, o.quantity"
                " HAVING count(k.id) <> o.quantity"
            ),
            "in_flight": await rows(
                "SELECT scope, key, locked_until FROM idempotency_records WHERE state = 'in_flight'"
            ),
        }


async def test_cut_and_blackholed_database_bounded_503s_then_no_key_lost_or_doubled() -> None:
    traffic = Traffic()
    async with proxied_server() as (base, db_url, proxy, seller, buyer):
        timeout = aiohttp.ClientTimeout(total=120)  # a hung request shows as a long duration
        async with aiohttp.ClientSession(timeout=timeout) as session:
            offer = await _stock(session, base, seller)
            stop = asyncio.Event()
            workers = [
                asyncio.create_task(_buyer(session, base, buyer, offer, w, traffic, stop))
                for w in range(WORKERS)
            ]
            await asyncio.sleep(CALM_S)

            traffic.phase = "cut"
            await proxy.close()  # RST on every connection, new ones refused
            await asyncio.sleep(CUT_S)
            await proxy.open()
            traffic.phase = "calm"
            await asyncio.sleep(CALM_S)

            traffic.phase = "blackhole"
            proxy.blackhole()
            await asyncio.sleep(BLACKHOLE_S)
            proxy.restore()
            traffic.phase = "calm"
            await asyncio.sleep(CALM_S)

            stop.set()
            await asyncio.wait_for(asyncio.gather(*workers), FLOW_DEADLINE_S + 30)
        ledger = await _ledger(db_url)

    assert traffic.problems == []
    slowest = max(traffic.durations)
    assert slowest[0] <= BOUND_S + SLACK_S, slowest
    by_phase = Counter((phase, status) for _, status, phase in traffic.durations)
    # The faults were felt (503s in both), and requests still succeeded around them.
    assert by_phase["cut", 503] >= 1, by_phase
    assert by_phase["blackhole", 503] >= 1, by_phase
    assert by_phase["calm", 200] >= 1, by_phase

    flows = len(traffic.order_ids)
    assert flows == len(traffic.delivered) > 0
    assert len(set(traffic.order_ids)) == flows  # one order per flow, despite the retries
    assert len(set(traffic.delivered)) == flows  # no key sold twice
    assert sum(ledger["keys"].values()) == KEYS  # no key lost
    assert ledger["keys"] == {"DELIVERED": flows, "AVAILABLE": KEYS - flows}
    assert ledger["orders"] == {"FULFILLED": flows}
    assert ledger["short"] == []  # every FULFILLED order has its keys
    assert ledger["in_flight"] == []
