"""Uploads under pressure, against a real `autokey serve` on PostgreSQL: compressed floods,
slow clients, and kill -9 in every phase of an upload."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import psycopg
import pytest

from tests.integration.server import autokey, serve, serve_process, server_env, stocked_offer, token
from tests.services import scratch_postgres

pytestmark = pytest.mark.postgres


def _gzip_of_newlines(count: int, tail: bytes = b"") -> bytes:
    """gzip of `count` newlines then `tail`, compressed piecewise (never `count` bytes held)."""
    packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    block = b"\n" * 1_000_000
    parts = [packer.compress(block) for _ in range(count // len(block))]
    parts += [packer.compress(b"\n" * (count % len(block)) + tail), packer.flush()]
    return b"".join(parts)


async def _new_pool(session: aiohttp.ClientSession, api: str, auth: dict[str, str]) -> str:
    async with session.post(f"{api}/key-pools", json={}, headers=auth) as r:
        return str((await r.json())["id"])


async def _latencies_while(
    session: aiohttp.ClientSession, url: str, work: Awaitable[object], **kwargs: object
) -> tuple[list[float], object]:
    """GET `url` back to back until `work` is done: (every latency in ms, work's result)."""
    task = asyncio.ensure_future(work)
    latencies: list[float] = []
    while not task.done():
        started = time.perf_counter()
        async with session.get(url, **kwargs) as r:  # type: ignore[arg-type]
            assert r.status == 200, await r.text()
            await r.read()
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.005)
    return latencies, task.result()


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def test_health_answers_within_100ms_while_gzip_floods_are_refused_or_processed() -> None:
    flood = _gzip_of_newlines(10**8)  # about 100 KB on the wire, 100 MB inflated
    within_caps = _gzip_of_newlines(1_900_000, b"FLOOD-KEY-00001\n")
    async with scratch_postgres() as url:
        env = server_env(url)
        autokey("migrate", env=env)
        auth = {"Authorization": f"Bearer {token('seller', env)}"}
        async with serve(env) as api, aiohttp.ClientSession() as session:

            async def upload(body: bytes) -> tuple[int, dict[str, object]]:
                pool = await _new_pool(session, api, auth)
                async with session.post(
                    f"{api}/key-pools/{pool}/keys/upload",
                    data=body,
                    headers={**auth, "Content-Type": "text/plain", "Content-Encoding": "gzip"},
                ) as r:
                    return r.status, await r.json()

            floods = asyncio.gather(upload(flood), upload(flood), upload(within_caps))
            latencies, results = await _latencies_while(session, f"{api}/health", floods)
    refused, refused_again, processed = results  # type: ignore[misc]
    assert refused[0] == refused_again[0] == 413
    assert refused[1]["code"] == "too_many_lines"
    assert processed == (200, processed[1])
    assert (processed[1]["added"], processed[1]["invalid"]) == (1, 0)
    assert latencies, "the floods ended before /health was asked once"
    assert max(latencies) < 100, sorted(latencies)[-5:]


async def _slow_upload(
    session: aiohttp.ClientSession, api: str, auth: dict[str, str], tag: int, lines: int
) -> dict[str, object]:
    pool = await _new_pool(session, api, auth)

    async def body() -> AsyncIterator[bytes]:
        for i in range(lines):
            yield f"SLOW-{tag:02d}-{i:03d}-KEY\n".encode()
            await asyncio.sleep(0.5)

    async with session.post(
        f"{api}/key-pools/{pool}/keys/upload",
        data=body(),
        headers={**auth, "Content-Type": "text/plain"},
        timeout=aiohttp.ClientTimeout(total=120),
    ) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def _idle_in_transaction(url: str, until: asyncio.Future[object]) -> list[int]:
    """Sample pg_stat_activity every 100 ms until `until` is done: the number of this
    database's connections idle in transaction for over 0.4 s, per sample. (Order flows go
    idle in transaction for a moment between their statements; an upload that held its
    transaction open while its client sends would stay so between lines, 0.5 s apart.)"""
    samples = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        while not until.done():
            cur = await db.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
                " AND now() - state_change > interval '0.4 seconds'"
            )
            samples.append((await cur.fetchone() or (0,))[0])
            await asyncio.sleep(0.1)
    return samples


async def test_twenty_slow_uploads_hold_no_connection_and_slow_no_order() -> None:
    async with scratch_postgres() as url:
        # A pool of 10 connections: fewer than the slow uploads. The order flows come from one
        # buyer, faster than its default allowance.
        env = server_env(url, AUTOKEY_RATE_LIMIT_ORDERS="off", AUTOKEY_RATE_LIMIT_WRITES="off")
        autokey("migrate", env=env)
        seller, buyer = token("seller", env), token("buyer", env)
        auth, paying = {"Authorization": f"Bearer {seller}"}, {"Authorization": f"Bearer {buyer}"}
        async with serve(env) as api, aiohttp.ClientSession() as session:
            _, offer = await stocked_offer(
                session, api, seller, [f"ORDER-{i:04d}-KEY" for i in range(5000)]
            )
            for _ in range(5):  # warm-up: connections, prepared statements
                await _timed_flow(session, api, paying, offer, [])
            uploads = asyncio.ensure_future(
                asyncio.gather(*(_slow_upload(session, api, auth, t, 10) for t in range(20)))
            )
            watcher = asyncio.ensure_future(_idle_in_transaction(url, uploads))
            latencies: list[float] = []
            while not uploads.done():
                await _timed_flow(session, api, paying, offer, latencies)
            reports, samples = uploads.result(), await watcher
    assert all(r["added"] == 10 for r in reports), reports
    assert len(samples) > 20
    assert max(samples) == 0, samples
    assert len(latencies) > 100
    assert _p99(latencies) < 100, sorted(latencies)[-10:]


async def _timed_flow(
    session: aiohttp.ClientSession,
    api: str,
    auth: dict[str, str],
    offer: str,
    latencies: list[float],
) -> None:
    """create -> pay -> fulfill, appending each call's latency (ms)."""
    order = ""
    for path, body in (("/orders", {"offerId": offer}), ("/pay", None), ("/fulfill", None)):
        target = f"{api}/orders" if path == "/orders" else f"{api}/orders/{order}{path}"
        started = time.perf_counter()
        async with session.post(target, json=body, headers=auth) as r:
            answer = await r.json()
            assert r.status in (200, 201), answer
        latencies.append((time.perf_counter() - started) * 1000)
        order = order or str(answer["id"])


async def _copy_running(url: str) -> bool:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        cur = await db.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND state = 'active' AND query LIKE '%COPY%'"
            " AND pid <> pg_backend_pid()"
        )
        return bool((await cur.fetchone() or (0,))[0])


KILL_KEYS = 300_000


@pytest.mark.parametrize("phase", ["receiving", "sealing", "copying"])
async def test_a_kill_9_in_any_phase_of_an_upload_stores_nothing(phase: str) -> None:
    async with scratch_postgres() as url:
        env = server_env(url)
        autokey("migrate", env=env)
        auth = {"Authorization": f"Bearer {token('seller', env)}"}
        sent = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            for start in range(0, KILL_KEYS, 10_000):
                yield "".join(f"KILL-{i:07d}-KEY\n" for i in range(start, start + 10_000)).encode()
                if phase == "receiving" and start == 50_000:
                    sent.set()
                    await asyncio.sleep(30)  # a slow client: the server dies meanwhile
            sent.set()

        async with aiohttp.ClientSession() as session:
            async with serve_process(env) as (api, process):
                pool = await _new_pool(session, api, auth)
                upload = asyncio.ensure_future(
                    session.post(
                        f"{api}/key-pools/{pool}/keys/upload",
                        data=body(),
                        headers={**auth, "Content-Type": "text/plain"},
                    )
                )
                await asyncio.wait_for(sent.wait(), timeout=60)
                if phase == "copying":
                    await _until(lambda: _copy_running(url), timeout_s=60)
                process.kill()  # SIGKILL: no cleanup, no graceful shutdown
                await process.wait()
                with pytest.raises(aiohttp.ClientError):
                    await upload
            async with serve(env) as api, session.get(f"{api}/key-pools/{pool}", headers=auth) as r:
                counts = await r.json()
        async with await psycopg.AsyncConnection.connect(url) as db:
            cur = await db.execute("SELECT count(*) FROM keys")
            stored = (await cur.fetchone() or (-1,))[0]
    assert (counts["totalKeys"], stored) == (0, 0)


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "the awaited state never came"
        await asyncio.sleep(0.01)
