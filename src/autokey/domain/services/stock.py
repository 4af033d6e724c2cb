"""Stock signals: an offer's level (`in_stock`, `low`, `out_of_stock`) is announced once per
crossing, as an audit event and a seller webhook event written in the same transaction.

Orders never check levels (their hot path stays as short as it is): housekeeping compares
every active AUTO_KEY offer's live level with its recorded one, a page of offers per
transaction, and uploads and invalidations check their pool's offers at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.ids import EventId, PoolId
from autokey.domain.model.offers import Offer, StockLevel
from autokey.domain.model.outbound import OutboundEventType
from autokey.domain.model.pages import MAX_PAGE_SIZE, PageRequest
from autokey.domain.services.outbound import Notice, announce_all
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
    available = await tx.pools.available_counts({o.key_pool_id for o in offers if o.key_pool_id})
    crossings = [c for offer in offers if (c := _crossing(offer, available))]
    for crossing in crossings:
        await tx.offers.save(crossing.offer)
    now = clock.now()
    await tx.audit.append([_audit_event(c, EventId(ids.new_id()), now) for c in crossings])
    await announce_all(tx, ids, clock, [_notice(c) for c in crossings])
    return len(crossings)


@attrs.frozen
class _Crossing:
    offer: Offer
    previous: StockLevel
    level: StockLevel
    keys: int


def _crossing(offer: Offer, available: Mapping[PoolId, int]) -> _Crossing | None:
    keys = available.get(offer.key_pool_id, 0) if offer.key_pool_id else 0
    previous = offer.recorded_stock_level
    level = offer.record_stock_level(keys)
    return None if level is None else _Crossing(offer, previous, level, keys)


def _audit_event(crossing: _Crossing, event_id: EventId, at: datetime) -> AuditEvent:
    offer = crossing.offer
    return AuditEvent(
        id=event_id,
        occurred_at=at,
        action=_SIGNALS[crossing.level][0],
        actor=None,
        pool_id=offer.key_pool_id,
        details={
            "offerId": str(offer.id),
            "previous": crossing.previous,
            "availableKeys": crossing.keys,
        },
    )


def _notice(crossing: _Crossing) -> Notice:
    offer = crossing.offer
    data = {
        "offerId": offer.id,
        "keyPoolId": offer.key_pool_id,
        "stockLevel": crossing.level,
        "previousStockLevel": crossing.previous,
        "availableKeys": crossing.keys,
        "lowStockThreshold": offer.low_stock_threshold,
    }
    return offer.seller_id, _SIGNALS[crossing.level][1], data


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
