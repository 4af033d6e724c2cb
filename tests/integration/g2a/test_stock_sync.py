"""Stock sync to G2A's Import API against the simulator over real HTTP: a burst of changes
becomes a handful of updates whose last carries the final count; a G2A outage opens the
circuit breaker without slowing orders, and the sync catches up when G2A returns."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from autokey.adapters.g2a.guard import CallGuard, GuardPolicy
from autokey.adapters.g2a.retry import RetryPolicy
from autokey.adapters.g2a.simulator import RunningSimulator
from autokey.adapters.memory.store import MemoryStore
from autokey.adapters.system import SystemClock
from autokey.domain.model.auth import Role
from autokey.domain.services.stock_sync import StockSync
from autokey.entrypoints.readiness import ComponentStatus, ReadinessChecker
from autokey.entrypoints.web.app import every
from tests.http import Api, running_api
from tests.integration.g2a.g2a_it_support import ClientFactory, set_faults

G2A_OFFER = "sim-offer-1"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    # One seller uploads 500 times in a burst: the per-principal limits would refuse it.
    unlimited = {f"AUTOKEY_RATE_LIMIT_{kind}": "off" for kind in ("UPLOADS", "ORDERS", "WRITES")}
    async with running_api(MemoryStore(), environ=unlimited) as running:
        yield running


async def _linked_offer(
    api: Api, simulator: RunningSimulator, keys: int
) -> tuple[dict[str, str], str, str]:
    seller = await api.token(Role.SELLER)
    pool, offer = await api.stocked_offer(seller, [f"SYNC-{i:05d}-KEY" for i in range(keys)])
    response = await api.client.put(
        f"/offers/{offer}/g2a-offer", json={"g2aOfferId": G2A_OFFER}, headers=seller
    )
    assert response.status == 200
    simulator.state.offers[G2A_OFFER] = 0  # the offer exists on G2A, stock unknown
    return seller, pool, offer


async def _available(api: Api, seller: dict[str, str], pool: str) -> int:
    response = await api.client.get(f"/key-pools/{pool}", headers=seller)
    count: int = (await response.json())["availableKeys"]
    return count


async def _link(api: Api, seller: dict[str, str], offer: str) -> Any:
    response = await api.client.get(f"/offers/{offer}/g2a-offer", headers=seller)
    assert response.status == 200
    return await response.json()


@contextlib.asynccontextmanager
async def _sync_loop(sync: StockSync, interval_s: float) -> AsyncIterator[None]:
    task = asyncio.create_task(every(interval_s, "g2a_stock_sync", sync.run_once))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _order(api: Api, buyer: dict[str, str], offer: str) -> float:
    """One buyer order, created, paid and fulfilled; its wall time in seconds."""
    started = time.perf_counter()
    created = await api.client.post("/orders", json={"offerId": offer}, headers=buyer)
    body = await created.json()
    assert created.status == 201, body
    for step in ("pay", "fulfill"):
        done = await api.client.post(f"/orders/{body['id']}/{step}", headers=buyer)
        assert done.status == 200
    return time.perf_counter() - started


async def test_a_burst_of_1000_changes_costs_a_handful_of_updates_ending_on_the_final_count(
    api: Api, simulator: RunningSimulator, make_client: ClientFactory
) -> None:
    seller, pool, offer = await _linked_offer(api, simulator, 500)
    buyer = await api.token(Role.BUYER)
    sync = StockSync(api.container.store(), make_client(), SystemClock(), job_poll_s=0.01)
    interval_s = 1.0

    async def upload(i: int) -> None:
        response = await api.client.post(
            f"/key-pools/{pool}/keys/upload", json={"keys": [f"BURST-{i:05d}-KEY"]}, headers=seller
        )
        assert response.status == 200

    async with _sync_loop(sync, interval_s):
        started = time.monotonic()
        await asyncio.gather(
            *(upload(i) for i in range(500)), *(_order(api, buyer, offer) for _ in range(500))
        )
        elapsed = time.monotonic() - started
    await sync.run_once()

    final = await _available(api, seller, pool)
    assert final == 500
    updates = simulator.state.offer_updates
    assert 1 <= updates <= 3 + math.ceil(elapsed / interval_s)
    assert updates < 25
    assert simulator.state.offers[G2A_OFFER] == final
    link = await _link(api, seller, offer)
    assert (link["syncedSize"], link["syncError"]) == (final, None)
    assert await sync.run_once() == 0  # nothing changed: nothing sent
    assert simulator.state.offer_updates == updates


async def test_an_outage_opens_the_breaker_without_slowing_orders_and_sync_catches_up(
    api: Api,
    simulator: RunningSimulator,
    make_client: ClientFactory,
    session: aiohttp.ClientSession,
) -> None:
    seller, pool, offer = await _linked_offer(api, simulator, 60)
    buyer = await api.token(Role.BUYER)
    guard = CallGuard(GuardPolicy(failure_threshold=3, open_s=1.0))
    client = make_client(guard=guard, policy=RetryPolicy.no_wait(max_retries=0))
    await client.probe_token()  # the token endpoint stays up; the Import API goes down
    sync = StockSync(api.container.store(), client, SystemClock(), job_poll_s=0.01)
    await set_faults(
        simulator, session, server_error_count=10_000, latency_s=1.5, path_prefix="/v3"
    )

    async with _sync_loop(sync, 0.05):
        timings = await asyncio.gather(*(_order(api, buyer, offer) for _ in range(20)))
        for _ in range(300):  # until the breaker has opened (bounded: ~15 s)
            if await guard.circuit_state() == "opened":
                break
            await asyncio.sleep(0.05)
        more = [await _order(api, buyer, offer) for _ in range(20)]
    assert max(timings + more) < 1.0, "an order waited for G2A"
    assert await guard.circuit_state() == "opened"
    requests_when_open = simulator.state.requests
    assert await sync.run_once() == 0  # refused at once by the open circuit
    assert simulator.state.requests == requests_when_open
    assert (await _link(api, seller, offer))["syncError"] == "circuit_open"
    readiness = ReadinessChecker(api.container.store(), g2a_circuit=guard.circuit_state)
    report = await readiness.check()
    assert report.components["g2aCircuit"].status is ComponentStatus.DEGRADED

    await set_faults(simulator, session, server_error_count=0, latency_s=0.0)
    await asyncio.sleep(1.1)  # the circuit's open period ends: one trial call
    assert await sync.run_once() == 1
    final = await _available(api, seller, pool)
    assert final == 20
    assert simulator.state.offers[G2A_OFFER] == final
    link = await _link(api, seller, offer)
    assert (link["syncedSize"], link["syncError"]) == (final, None)
    assert await guard.circuit_state() == "closed"
