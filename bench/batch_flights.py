"""Round trips to PostgreSQL per group-commit batch (ADR 0032), by kind of call: the buyer
API's create, pay and fulfill, and G2A's merchant reserve and order. A batch pays its round
trips once for all of its calls, so each one fewer is less waiting and less CPU for every
call under load. Counted like `orders_bench.py`'s round trips (strace, a flight of sends is
one), over the batch steps run in this process on a scratch database.

Run from the repository root: `.venv/bin/python bench/batch_flights.py` (under a minute).
Settings (environment): BENCH_BATCH=8 calls per batch, BENCH_ROUNDS=5 batches of each kind,
BENCH_SELLERS=1 sellers, each with a pool and an offer; a batch's calls go to them in turn.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from _harness import cli, environment, scratch_database, server, traced
from orders_bench import setup

from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.ids import OfferId, SubjectId
from autokey.domain.services.merchant import OrderingCall, ReserveCall, ReserveItem
from autokey.domain.services.orders import CreateCall, OrderCall
from autokey.entrypoints import bootstrap
from autokey.entrypoints.container import Container
from autokey.entrypoints.settings import load_settings
from autokey.ports.store import UnitOfWork

BATCH = int(os.environ.get("BENCH_BATCH", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
SELLERS = int(os.environ.get("BENCH_SELLERS", "1"))
PRODUCT = "10000068865001"

Step = Callable[[UnitOfWork, Sequence[Any]], Awaitable[Sequence[Any]]]


async def _flights(wired: Container, step: Step, batches: list[list[Any]]) -> tuple[float, list]:
    """Round trips per batch of `step` over `batches`, each in a transaction of its own, and
    what each batch answered."""
    answers = []
    async with traced([os.getpid()]) as counted:
        for calls in batches:
            async with wired.store().transaction() as tx:
                answers.append(await step(tx, calls))
    assert all(a is not None for batch in answers for a in batch), "a call left its batch"
    return counted[0] / len(batches), answers


async def main() -> None:
    async with scratch_database() as url:
        env = environment(url)
        cli("migrate", env=env)
        sellers = [
            json.loads(cli("token", "create", "--role", "seller", env=env)) for _ in range(SELLERS)
        ]
        stock = 2 * BATCH * ROUNDS
        offers = []
        async with server(env, "1") as (api, _):
            for n, seller in enumerate(sellers):
                _, offer = await setup(api, seller["token"], f"orders{n}", stock)
                await setup(api, seller["token"], f"g2a{n}", stock, g2aProductId=PRODUCT)
                offers.append(
                    (SubjectId(uuid.UUID(seller["subject"])), OfferId(uuid.UUID(offer["id"])))
                )
        buyer = Principal(subject=SubjectId(uuid.uuid4()), role=Role.BUYER)
        turns = [offers[i % len(offers)] for i in range(BATCH)]
        creates = [[CreateCall(principal=buyer, offer_id=o, quantity=1) for _, o in turns]] * ROUNDS
        item = ReserveItem(product_id=PRODUCT, quantity=1)
        reserves = [[ReserveCall(seller_id=s, item=item) for s, _ in turns]] * ROUNDS
        async with bootstrap.opened(load_settings(env)) as wired:
            orders, merchant, rows = wired.orders(), wired.merchant(), []
            flights, created = await _flights(wired, orders.create_many_in, creates)
            rows.append(("create", flights))
            placed = [[OrderCall(principal=buyer, order_id=v.order.id) for v in b] for b in created]
            rows.append(("pay", (await _flights(wired, orders.pay_many_in, placed))[0]))
            rows.append(("fulfill", (await _flights(wired, orders.fulfill_many_in, placed))[0]))
            flights, reserved = await _flights(wired, merchant.reserve_many_in, reserves)
            rows.append(("merchant reserve", flights))
            ordering = [
                [
                    OrderingCall(
                        seller_id=v.reservation.seller_id,
                        reservation_id=v.reservation.id,
                        g2a_order_id=n * BATCH + i + 1,
                    )
                    for i, v in enumerate(b)
                ]
                for n, b in enumerate(reserved)
            ]
            rows.append(
                ("merchant order", (await _flights(wired, merchant.order_many_in, ordering))[0])
            )
    print(
        f"round trips to PostgreSQL per batch of {BATCH} calls to {SELLERS} seller(s)"
        f" ({ROUNDS} batches each, strace)"
    )
    for kind, per_batch in rows:
        print(f"  {kind:17} {per_batch:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
