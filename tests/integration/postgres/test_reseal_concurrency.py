"""`autokey keys reseal` beside live order traffic on PostgreSQL: it never waits for a key an
order holds, and no key is lost, doubled or left unreadable (ADR 0011)."""

from __future__ import annotations

import asyncio
import os

import psycopg
import pytest

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndexKeys, master_key_id
from autokey.adapters.payments import SimulatedPaymentGateway
from autokey.adapters.postgres.store import PostgresStore
from autokey.adapters.system import SystemClock, Uuid7Ids
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.ids import OfferId
from autokey.domain.services.inventory import InventoryService
from autokey.domain.services.keyring import KeyringService
from autokey.domain.services.orders import OrderService
from autokey.domain.services.transactions import transact
from tests import builders as b
from tests.services import scratch_postgres

pytestmark = pytest.mark.postgres

OLD, NEW = os.urandom(32), os.urandom(32)
KEYS, FLOWS = 120, 60


def _keyring(store: PostgresStore, *masters: bytes) -> KeyringService:
    return KeyringService(
        store, AesGcmKeyCipher(masters), HmacBlindIndexKeys(masters), SystemClock(), Uuid7Ids()
    )


def _orders(store: PostgresStore, *masters: bytes) -> OrderService:
    cipher = AesGcmKeyCipher(masters)
    gateway, clock = SimulatedPaymentGateway(), SystemClock()
    return OrderService(store, cipher, gateway, clock, Uuid7Ids(), reservation_ttl_s=900)


async def _flow(store: PostgresStore, orders: OrderService, offer_id: OfferId) -> list[str]:
    buyer = Principal(subject=b.seller(), role=Role.BUYER)
    view = await transact(store, lambda tx: orders.create_in(tx, buyer, offer_id, 1))
    await transact(store, lambda tx: orders.pay_in(tx, buyer, view.order.id))
    done = await transact(store, lambda tx: orders.fulfill_in(tx, buyer, view.order.id))
    return [k.plaintext for k in done.keys]


async def _stocked(store: PostgresStore, texts: list[str]) -> OfferId:
    seller = Principal(subject=b.seller(), role=Role.SELLER)
    pool = b.pool(seller.subject)
    offer = b.offer(seller.subject, pool.id)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
    inventory = InventoryService(
        store,
        AesGcmKeyCipher([OLD]),
        await _keyring(store, OLD).unlock(),
        SystemClock(),
        Uuid7Ids(),
    )

    report, _ = await inventory.upload(seller, pool.id, iter(enumerate(texts, 1)))
    assert report.added == len(texts)
    return offer.id


async def test_reseal_beside_order_traffic_loses_and_doubles_nothing() -> None:
    texts = [f"TRAFFIC-{n:05}" for n in range(KEYS)]
    async with scratch_postgres() as url:
        store = await PostgresStore.open(url, min_size=2, max_size=12)
        try:
            await store.migrate()
            offer_id = await _stocked(store, texts)
            during = _orders(store, NEW, OLD)
            keyring = _keyring(store, NEW, OLD)
            await keyring.unlock()
            report, *flows = await asyncio.gather(
                keyring.reseal(lambda _: None, 3),
                *(_flow(store, during, offer_id) for _ in range(FLOWS)),
            )
            delivered = [k for keys in flows for k in keys]
            assert len(delivered) == FLOWS
            assert len(set(delivered)) == FLOWS
            assert set(delivered) <= set(texts)
            if report.still_needed:  # keys held by a flow during every pass: a rerun takes them
                report = await keyring.reseal(lambda _: None, 3)
            assert report.still_needed == ()
            assert report.unreadable == []
            # The old key retired: every remaining key is sold, under the new key alone.
            await _keyring(store, NEW).unlock()
            after = _orders(store, NEW)
            remaining = [await _flow(store, after, offer_id) for _ in range(KEYS - FLOWS)]
            everything = delivered + [k for r in remaining for k in r]
            assert sorted(everything) == sorted(texts)
        finally:
            await store.close()


async def test_reseal_skips_a_key_an_open_transaction_holds_instead_of_waiting() -> None:
    async with scratch_postgres() as url:
        store = await PostgresStore.open(url, min_size=1, max_size=4)
        try:
            await store.migrate()
            await _stocked(store, [f"HELD-{n:03}" for n in range(5)])
            keyring = _keyring(store, NEW, OLD)
            await keyring.unlock()
            async with await psycopg.AsyncConnection.connect(url) as holder:
                held = await (
                    await holder.execute("SELECT id FROM keys ORDER BY id LIMIT 1 FOR UPDATE")
                ).fetchone()
                assert held is not None
                report = await asyncio.wait_for(keyring.reseal(lambda _: None, 2), timeout=30)
                assert (report.resealed, report.still_needed) == (4, (master_key_id(OLD),))
                await holder.rollback()
            report = await keyring.reseal(lambda _: None, 2)
            assert (report.resealed, report.still_needed) == (1, ())
            await _keyring(store, NEW).unlock()
        finally:
            await store.close()
