"""Stock signals on every store: the offer columns, the sweep's locked page of stocked
offers, and one audit event plus one outbox delivery per crossing (never per sweep)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import attrs

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndex
from autokey.adapters.system import Uuid7Ids
from autokey.domain.model.audit import AuditAction
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.ids import OrderId
from autokey.domain.model.offers import OfferStatus, StockLevel
from autokey.domain.model.outbound import OutboundEventType
from autokey.domain.model.pages import PageRequest
from autokey.domain.services.inventory import InventoryService
from autokey.domain.services.offers import OfferService
from autokey.ports.store import Store
from tests import builders as b
from tests.conftest import FakeClock


async def test_offer_threshold_and_recorded_level_round_trip(store: Store) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = attrs.evolve(b.offer(owner, pool.id), low_stock_threshold=5)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
    offer.low_stock_threshold, offer.recorded_stock_level = None, StockLevel.OUT_OF_STOCK
    async with store.transaction() as tx:
        await tx.offers.save(offer)
    async with store.transaction() as tx:
        assert await tx.offers.get(offer.id) == offer


async def test_lock_stocked_pages_active_auto_key_offers_of_a_pool_or_all(store: Store) -> None:
    owner = b.seller()
    one, two = b.pool(owner), b.pool(b.seller())
    stocked = [b.offer(owner, one.id), b.offer(owner, one.id), b.offer(two.seller_id, two.id)]
    others = [
        b.offer(owner, one.id, OfferStatus.DRAFT),
        b.offer(owner, one.id, OfferStatus.INACTIVE),
        b.offer(owner, None),  # MANUAL
    ]
    async with store.transaction() as tx:
        await tx.pools.add(one)
        await tx.pools.add(two)
        for o in [*stocked, *others]:
            await tx.offers.add(o)
    async with store.transaction() as tx:
        first = await tx.offers.lock_stocked(None, PageRequest(limit=2))
        rest = await tx.offers.lock_stocked(None, PageRequest(after=first.next_after))
        of_one = await tx.offers.lock_stocked(one.id, PageRequest())
    assert [o.id for o in [*first.items, *rest.items]] == sorted(o.id for o in stocked)
    assert rest.next_after is None
    assert [o.id for o in of_one.items] == sorted(o.id for o in stocked[:2])


@attrs.frozen(kw_only=True)
class Shop:
    store: Store
    clock: FakeClock
    seller: Principal
    inventory: InventoryService
    offers: OfferService


def _shop(store: Store) -> Shop:
    clock, ids = FakeClock(), Uuid7Ids()
    cipher = AesGcmKeyCipher([bytes(range(32))])
    return Shop(
        store=store,
        clock=clock,
        seller=Principal(subject=b.seller(), role=Role.SELLER),
        inventory=InventoryService(store, cipher, HmacBlindIndex(bytes(range(32))), clock, ids),
        offers=OfferService(store, clock, ids),
    )


def _lines(texts: Sequence[str]) -> Iterator[tuple[int, str]]:
    return enumerate(texts, 1)


async def _signals(shop: Shop, pool_id: object) -> tuple[list[AuditAction], list[str]]:
    stock = {a.value for a in AuditAction if a.value.startswith("offer.")}
    async with shop.store.transaction() as tx:
        events = await tx.audit.list_events(pool_id, PageRequest())  # type: ignore[arg-type]
        (endpoint,) = await tx.endpoints.list_for_sellers([shop.seller.subject])
        deliveries = await tx.deliveries.list_for_endpoint(endpoint.id, PageRequest())
    actions = [e.action for e in events.items if e.action in stock]
    return actions, [d.event_type.value for d in reversed(deliveries.items)]


async def test_each_crossing_is_recorded_and_announced_once(store: Store) -> None:
    shop = _shop(store)
    endpoint = attrs.evolve(
        b.endpoint(shop.seller.subject), event_types=frozenset(OutboundEventType)
    )
    pool = (await shop.inventory.create_pool(shop.seller, "Stocked")).pool
    async with store.transaction() as tx:
        await tx.endpoints.add(endpoint)
    await shop.inventory.upload(shop.seller, pool.id, _lines([f"AAAAA-{i:05}" for i in range(3)]))
    offer = attrs.evolve(b.offer(shop.seller.subject, pool.id), low_stock_threshold=2)
    async with store.transaction() as tx:
        await tx.offers.add(offer)

    assert await shop.offers.sweep_stock_levels() == 0  # 3 keys, threshold 2: in stock
    async with store.transaction() as tx:  # an order takes a key: the sweep notices
        await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 1, shop.clock.now())
    assert await shop.offers.sweep_stock_levels() == 1
    assert await shop.offers.sweep_stock_levels() == 0  # once per crossing, not per sweep
    async with store.transaction() as tx:
        await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 1, shop.clock.now())
    assert await shop.offers.sweep_stock_levels() == 0  # still low
    keys = await shop.inventory.list_keys(shop.seller, pool.id, None, PageRequest())
    (last,) = [k for k in keys.items if k.order_id is None]
    await shop.inventory.invalidate_key(shop.seller, pool.id, last.id)  # checked at once
    await shop.inventory.upload(shop.seller, pool.id, _lines(["BBBBB-00001", "BBBBB-00002"]))
    await shop.inventory.upload(shop.seller, pool.id, _lines(["CCCCC-00001"]))

    actions, announced = await _signals(shop, pool.id)
    assert actions == [
        AuditAction.OFFER_LOW_STOCK,
        AuditAction.OFFER_OUT_OF_STOCK,
        AuditAction.OFFER_LOW_STOCK,  # 2 keys again: back, but low
        AuditAction.OFFER_BACK_IN_STOCK,
    ]
    assert announced == [
        "upload.completed",
        "offer.low_stock",
        "offer.out_of_stock",
        "upload.completed",
        "offer.low_stock",
        "upload.completed",
        "offer.back_in_stock",
    ]
    async with store.transaction() as tx:
        saved = await tx.offers.get(offer.id)
    assert saved is not None
    assert saved.recorded_stock_level is StockLevel.IN_STOCK


async def test_concurrent_sweeps_record_a_crossing_once(store: Store) -> None:
    shop = _shop(store)
    pools = [(await shop.inventory.create_pool(shop.seller, f"P{i}")).pool for i in range(4)]
    async with store.transaction() as tx:
        await tx.endpoints.add(
            attrs.evolve(b.endpoint(shop.seller.subject), event_types=frozenset(OutboundEventType))
        )
        for p in pools:  # empty pools: every offer is out of stock
            for _ in range(5):
                await tx.offers.add(b.offer(shop.seller.subject, p.id))
    counted = await asyncio.gather(*(shop.offers.sweep_stock_levels() for _ in range(4)))
    assert sum(counted) == 20
    for p in pools:
        actions, _ = await _signals(shop, p.id)
        assert actions == [AuditAction.OFFER_OUT_OF_STOCK] * 5
