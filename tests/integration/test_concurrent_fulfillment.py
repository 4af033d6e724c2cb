"""200 concurrent order -> pay -> fulfill flows against a pool of 150 keys, over HTTP, on real
servers: exactly 150 fulfilled with 150 distinct keys, 50 refused out_of_stock, counts add up.
The calls share group-commit batches (ADR 0032); failing calls among them fail alone."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.server import (
    autokey,
    mean_batch_sizes,
    serve,
    server_env,
    stocked_offer,
    token,
    with_metrics,
)
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
async def test_failing_calls_inside_batches_leave_the_other_orders_correct() -> None:
    """Good flows race calls that fail (an unknown offer, another buyer's order, an order not
    paid yet) in the same batches: each failing call gets its own error, every good order
    its own key, and the batches did hold several calls."""
    async with scratch_postgres() as url:
        env = with_metrics(server_env(url))
        autokey("migrate", env=env)
        seller, buyer, other = token("seller", env), token("buyer", env), token("buyer", env)
        async with serve(env) as api, aiohttp.ClientSession() as session:
            _, offer = await stocked_offer(
                session, api, seller, [f"MIX-{i:03d}" for i in range(60)]
            )
            auth = {"Authorization": f"Bearer {buyer}"}
            # Orders the failing calls aim at: one stays unpaid, one is another buyer's.
            targets = []
            for _ in range(2):
                async with session.post(
                    f"{api}/orders", json={"offerId": offer}, headers=auth
                ) as r:
                    targets.append((await r.json())["id"])

            async def failing(kind: int) -> tuple[int, str]:
                if kind == 0:
                    call = session.post(
                        f"{api}/orders", json={"offerId": str(uuid.uuid4())}, headers=auth
                    )
                elif kind == 1:
                    call = session.post(
                        f"{api}/orders/{targets[1]}/pay",
                        headers={"Authorization": f"Bearer {other}"},
                    )
                else:
                    call = session.post(f"{api}/orders/{targets[0]}/fulfill", headers=auth)
                async with call as r:
                    return r.status, (await r.json())["code"]

            results = await asyncio.gather(
                *(_flow(session, api, buyer, offer) for _ in range(50)),
                *(failing(i % 3) for i in range(30)),
            )
            flows, failures = results[:50], results[50:]
            assert Counter(kind for kind, _ in flows) == {"fulfilled": 50}
            assert len({key for _, key in flows}) == 50
            assert Counter(failures) == {
                (400, "offer_not_available"): 10,
                (404, "not_found"): 10,
                (409, "order_not_paid"): 10,
            }
            sizes = await mean_batch_sizes(session, env)
        for call in ("create", "pay", "fulfill"):
            assert sizes[call] > 1, sizes


@pytest.mark.postgres
async def test_concurrent_flows_on_postgres_with_two_workers() -> None:
    async with scratch_postgres() as url:
        await _run(server_env(url), 1, "--workers", "2")


async def test_concurrent_flows_on_sqlite_one_process(tmp_path: Path) -> None:
    await _run(server_env(f"sqlite:///{tmp_path / 'conc.db'}"), 1)
