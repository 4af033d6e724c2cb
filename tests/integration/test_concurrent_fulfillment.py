"""200 concurrent order -> pay -> fulfill flows against a pool of 150 keys, over HTTP, on real
servers: exactly 150 fulfilled with 150 distinct keys, 50 refused out_of_stock, counts add up."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.server import autokey, serve, server_env, stocked_offer, token
from tests.services import scratch_postgres

FLOWS, KEYS = 200, 150


async def _flow(session: aiohttp.ClientSession, api: str, buyer: str, offer: str) -> Any:
    headers = {"Authorization": f"Bearer {buyer}"}
    async with session.post(f"{api}/orders", json={"offerId": offer}, headers=headers) as r:
        body = await r.json()
        if r.status != 201:
            return ("refused", body["code"])
    for step in ("pay", "fulfill"):
        async with session.post(f"{api}/orders/{body['id']}/{step}", headers=headers) as r:
            result = await r.json()
            assert r.status == 200, result
    return ("fulfilled", result["keys"][0]["key"])


async def _run(env: dict[str, str], processes: int, *serve_args: str) -> None:
    autokey("migrate", env=env)
    seller, buyer = token("seller", env), token("buyer", env)
    async with AsyncExitStack() as stack:
        apis = [await stack.enter_async_context(serve(env, *serve_args)) for _ in range(processes)]
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=FLOWS))
        )
        keys = [f"CONC-{i:05d}-KEY" for i in range(KEYS)]
        pool, offer = await stocked_offer(session, apis[0], seller, keys)

        results = await asyncio.gather(
            *(_flow(session, apis[i % processes], buyer, offer) for i in range(FLOWS))
        )

        outcomes = Counter(kind for kind, _ in results)
        assert outcomes == {"fulfilled": KEYS, "refused": FLOWS - KEYS}
        assert {code for kind, code in results if kind == "refused"} == {"out_of_stock"}
        delivered = [key for kind, key in results if kind == "fulfilled"]
        assert len(set(delivered)) == KEYS
        auth = {"Authorization": f"Bearer {seller}"}
        async with session.get(f"{apis[-1]}/key-pools/{pool}", headers=auth) as r:
            counts = await r.json()
        assert (counts["deliveredKeys"], counts["availableKeys"], counts["reservedKeys"]) == (
            KEYS,
            0,
            0,
        )
        assert counts["totalKeys"] == sum(
            counts[f] for f in ("availableKeys", "reservedKeys", "deliveredKeys", "invalidKeys")
        )


@pytest.mark.postgres
@pytest.mark.parametrize("processes", [1, 2])
async def test_concurrent_flows_on_postgres(processes: int) -> None:
    async with scratch_postgres() as url:
        await _run(server_env(url), processes)


@pytest.mark.postgres
async def test_concurrent_flows_on_postgres_with_two_workers() -> None:
    async with scratch_postgres() as url:
        await _run(server_env(url), 1, "--workers", "2")


async def test_concurrent_flows_on_sqlite_one_process(tmp_path: Path) -> None:
    await _run(server_env(f"sqlite:///{tmp_path / 'conc.db'}"), 1)
