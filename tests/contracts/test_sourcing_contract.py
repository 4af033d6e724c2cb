"""Contract of the store ports for G2A-sourced orders and signed webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import attrs
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndex
from autokey.adapters.g2a.client import G2AMarketplaceClient
from autokey.adapters.g2a.metrics import G2AMetrics
from autokey.adapters.g2a.retry import RetryPolicy
from autokey.adapters.g2a.simulator import (
    FIRST_ORDER_ID,
    SimulatorConfig,
    simulated_key,
    start_simulator,
)
from autokey.adapters.memory.token_cache import MemoryTokenCache
from autokey.adapters.system import Uuid7Ids
from autokey.domain.model.audit import AuditAction
from autokey.domain.model.keys import KeyStatus
from autokey.domain.model.offers import DeliveryType, Money
from autokey.domain.model.orders import OrderStatus, UpstreamState
from autokey.domain.model.pages import PageRequest
from autokey.domain.model.webhooks import WebhookEvent, WebhookEventType, WebhookOutcome
from autokey.domain.services.inventory import key_context
from autokey.domain.services.sourcing import SourcingService
from autokey.ports.store import Store
from tests import builders as b
from tests.conftest import FakeClock
from tests.integration.g2a.g2a_it_support import CLIENT_ID, CLIENT_SECRET, EMAIL, g2a_config


async def test_g2a_offer_fields_round_trip(store: Store) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = attrs.evolve(
        b.offer(owner, pool.id),
        delivery_type=DeliveryType.G2A,
        g2a_product_id="10000068865001",
        max_price=Money(amount=Decimal("30.5"), currency="EUR"),
    )
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
    async with store.transaction() as tx:
        assert await tx.offers.get(offer.id) == offer


async def test_orders_are_found_by_upstream_id_and_listed_while_fulfilling(store: Store) -> None:
    owner, buyer = b.seller(), b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    first, second, plain = (b.order(offer, buyer) for _ in range(3))
    for order, upstream_id in ((first, "G2A-1"), (second, "G2A-2")):
        order.pay(b.T0)
        order.start_sourcing(b.T0 + timedelta(seconds=1 if order is first else 2))
        order.record_upstream(UpstreamState.CREATED, order.updated_at, upstream_id)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        for order in (second, first, plain):
            await tx.orders.add(order)
    async with store.transaction() as tx:
        assert await tx.orders.find_by_upstream_id("G2A-1", for_update=True) == first
        assert await tx.orders.find_by_upstream_id("nope") is None
        fulfilling = await tx.orders.list_fulfilling(limit=10)
        assert [o.id for o in fulfilling] == [first.id, second.id]
        assert all(o.status is OrderStatus.FULFILLING for o in fulfilling)
        first.record_upstream(UpstreamState.COMPLETE, b.T0 + timedelta(seconds=5))
        await tx.orders.save(first)
    async with store.transaction() as tx:
        saved = await tx.orders.get(first.id)
        assert saved is not None
        assert (saved.upstream_order_id, saved.upstream_state) == ("G2A-1", UpstreamState.COMPLETE)
        assert [o.id for o in await tx.orders.list_fulfilling(limit=1)] == [second.id]


async def test_a_nonce_is_remembered_once_and_pruned_later(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.webhooks.remember_nonce("n-1", b.T0) is True
        assert await tx.webhooks.remember_nonce("n-1", b.T0) is False
        assert await tx.webhooks.remember_nonce("n-2", b.T0 + timedelta(minutes=20)) is True
    async with store.transaction() as tx:
        assert await tx.webhooks.prune_nonces(b.T0 + timedelta(minutes=10)) == 1
        assert await tx.webhooks.remember_nonce("n-1", b.T0) is True
        assert await tx.webhooks.remember_nonce("n-2", b.T0) is False


async def test_concurrent_nonces_are_accepted_exactly_once(store: Store) -> None:
    async def remember() -> bool:
        async with store.transaction() as tx:
            return await tx.webhooks.remember_nonce("race", b.T0)

    results = await asyncio.gather(*(remember() for _ in range(8)), return_exceptions=True)
    assert results.count(True) == 1
    assert all(r is True or r is False for r in results)


async def test_webhook_events_are_stored_once_per_event_id(store: Store) -> None:
    event = WebhookEvent(
        event_id="evt_1",
        type=WebhookEventType.ORDER_PAID,
        upstream_order_id="G2A-1",
        occurred_at=b.T0,
        received_at=b.T0 + timedelta(seconds=1),
        outcome=WebhookOutcome.UNMATCHED,
        payload=b'{"event_id":"evt_1"}',
    )
    async with store.transaction() as tx:
        assert await tx.webhooks.add_event(event) is True
        assert await tx.webhooks.add_event(attrs.evolve(event, outcome=WebhookOutcome.APPLIED)) is (
            False
        )
    async with store.transaction() as tx:
        assert await tx.webhooks.get_event("evt_1") == event
        assert await tx.webhooks.get_event("evt_2") is None


@pytest.fixture
async def g2a() -> AsyncIterator[G2AMarketplaceClient]:
    """A real G2A client talking HTTP to the simulator on a loopback port."""
    sim = await start_simulator(
        SimulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, email=EMAIL)
    )
    try:
        async with aiohttp.ClientSession() as session:
            yield G2AMarketplaceClient(
                session=session,
                config=g2a_config(sim.url),
                token_cache=MemoryTokenCache(),
                retry_policy=RetryPolicy.no_wait(),
                metrics=G2AMetrics(CollectorRegistry()),
                clock=lambda: datetime.now(UTC),
            )
    finally:
        await sim.stop()


async def test_a_bought_key_whose_plaintext_is_stored_already_still_reaches_the_buyer(
    store: Store,
    g2a: G2AMarketplaceClient,
    cipher: AesGcmKeyCipher,
    blind_index: HmacBlindIndex,
    clock: FakeClock,
) -> None:
    # The simulator's first order delivers this key; a seller uploaded it here before.
    plaintext = simulated_key(str(FIRST_ORDER_ID))
    elsewhere = b.pool()
    original = b.key(elsewhere.id, plaintext)
    owner = b.seller()
    pool = b.pool(owner)
    offer = attrs.evolve(
        b.offer(owner, pool.id),
        delivery_type=DeliveryType.G2A,
        g2a_product_id="10000068865001",
        max_price=Money(amount=Decimal("30"), currency="EUR"),
    )
    order = b.order(offer, b.seller())
    order.pay(b.T0)
    async with store.transaction() as tx:
        for p in (elsewhere, pool):
            await tx.pools.add(p)
        assert await tx.keys.add_new([original]) == {original.id}
        await tx.offers.add(offer)
        await tx.orders.add(order)
    sourcing = SourcingService(store, g2a, cipher, blind_index, clock, Uuid7Ids())

    with capture_logs() as logs:
        done = await sourcing.advance(order.id)

    assert done.status is OrderStatus.FULFILLED
    async with store.transaction() as tx:
        (delivered,) = await tx.keys.for_order(order.id)
        assert delivered.status is KeyStatus.DELIVERED
        assert cipher.open(delivered.sealed, context=key_context(pool.id, delivered.id)) == (
            plaintext
        )
        # The original still de-duplicates uploads, and is untouched.
        assert await tx.keys.get(original.id) == original
        assert await tx.keys.add_new([b.key(pool.id, plaintext)]) == frozenset()
        events = (await tx.audit.list_events(pool.id, PageRequest(limit=10))).items
    (collision,) = [e for e in events if e.action is AuditAction.KEY_DUPLICATE_BOUGHT]
    assert (collision.order_id, collision.key_ids) == (order.id, (delivered.id, original.id))
    (signal,) = [line for line in logs if line["event"] == "g2a.key_duplicate_bought"]
    assert signal["log_level"] == "error"
    assert (signal["key_id"], signal["duplicate_of"]) == (str(delivered.id), str(original.id))
    assert plaintext not in repr(logs)
