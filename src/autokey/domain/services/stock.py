"""Stock signals: an offer's level (`in_stock`, `low`, `out_of_stock`) is announced once per
crossing, as an audit event and a seller webhook event written in the same transaction.

Orders never check levels (their hot path stays as short as it is): housekeeping compares
every active AUTO_KEY offer's live level with its recorded one, a page of offers per
transaction, and uploads and invalidations check their pool's offers at once."""

from __future__ import annotations

from collections.abc import Sequence

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.ids import EventId, PoolId
from autokey.domain.model.offers import Offer, StockLevel
from autokey.domain.model.outbound import OutboundEventType
from autokey.domain.model.pages import MAX_PAGE_SIZE, PageRequest
from autokey.domain.services.outbound import announce
from autokey.ports.store import Store, UnitOfWork
from autokey.ports.system import Clock, IdGenerator

_SIGNALS = {
    StockLevel.IN_STOCK: (AuditAction.OFFER_BACK_IN_STOCK, OutboundEventType.OFFER_BACK_IN_STOCK),
    StockLevel.LOW: (AuditAction.OFFER_LOW_STOCK, OutboundEventType.OFFER_LOW_STOCK),
    StockLevel.OUT_OF_STOCK: (AuditAction.OFFER_OUT_OF_STOCK, OutboundEventType.OFFER_OUT_OF_STOCK),
}


async def record_stock_levels(
    tx: UnitOfWork, ids: IdGenerator, clock: Clock, offers: Sequence[Offer]
) -> int:
    """Record the live level of each offer (locked by the caller) in `tx`; for each one that
    crossed, save it, append an audit event to its pool and announce the webhook event.
    Returns how many crossed."""
    pools = {o.key_pool_id for o in offers if o.key_pool_id is not None}
    available = await tx.pools.available_counts(pools)
    crossed = 0
    for offer in offers:
        keys = available.get(offer.key_pool_id, 0) if offer.key_pool_id else 0
        previous = offer.recorded_stock_level
        level = offer.record_stock_level(keys)
        if level is None:
            continue
        crossed += 1
        action, event_type = _SIGNALS[level]
        await tx.offers.save(offer)
        await tx.audit.append(
            [
                AuditEvent(
                    id=EventId(ids.new_id()),
                    occurred_at=clock.now(),
                    action=action,
                    actor=None,
                    pool_id=offer.key_pool_id,
                    details={"offerId": str(offer.id), "previous": previous, "availableKeys": keys},
                )
            ]
        )
        await announce(
            tx,
            ids,
            clock,
            offer.seller_id,
            event_type,
            {
                "offerId": offer.id,
                "keyPoolId": offer.key_pool_id,
                "stockLevel": level,
                "previousStockLevel": previous,
                "availableKeys": keys,
                "lowStockThreshold": offer.low_stock_threshold,
            },
        )
    return crossed


async def check_pool_offers(tx: UnitOfWork, ids: IdGenerator, clock: Clock, pool_id: PoolId) -> int:
    """`record_stock_levels` for the active AUTO_KEY offers of one pool (after an upload or
    an invalidation, in its transaction)."""
    offers = await tx.offers.lock_stocked(pool_id, PageRequest(limit=MAX_PAGE_SIZE))
    return await record_stock_levels(tx, ids, clock, offers.items)


async def sweep_stock_levels(store: Store, ids: IdGenerator, clock: Clock) -> int:
    """Housekeeping: `record_stock_levels` for every active AUTO_KEY offer, a page per
    transaction. Safe to run in several processes: each skips offers another one holds."""
    page, crossed = PageRequest(limit=MAX_PAGE_SIZE), 0
    while True:
        async with store.transaction() as tx:
            offers = await tx.offers.lock_stocked(None, page)
            crossed += await record_stock_levels(tx, ids, clock, offers.items)
        if offers.next_after is None:
            return crossed
        page = PageRequest(limit=MAX_PAGE_SIZE, after=offers.next_after)
