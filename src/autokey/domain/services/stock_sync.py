"""Keeping the stock G2A shows for our offers in step with their pools (Import API).

Each run reads every offer linked to a G2A offer and pushes `inventory.size` only where the
count changed since G2A last accepted one, or the last push failed. Run every
`AUTOKEY_G2A_STOCK_SYNC_INTERVAL_S` by one loop, this debounces and coalesces: a burst of
uploads and orders between two runs becomes one update per offer carrying the count of that
moment, never more than one per offer in flight, and orders never wait for it (they do not
know it exists). The value is absolute, so a repeat or a late one is harmless."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import attrs
import structlog

from autokey.domain.model.errors import UpstreamError
from autokey.domain.model.ids import PoolId
from autokey.domain.model.merchant import G2AOfferLink, inventory_size
from autokey.domain.model.offers import Offer, OfferStatus
from autokey.ports.marketplace import MarketplaceClient
from autokey.ports.store import Store
from autokey.ports.system import Clock

log = structlog.get_logger("autokey.g2a.stock_sync")


class StockSync:
    def __init__(
        self,
        store: Store,
        marketplace: MarketplaceClient,
        clock: Clock,
        *,
        job_polls: int = 10,
        job_poll_s: float = 0.5,
    ) -> None:
        self._store, self._marketplace, self._clock = store, marketplace, clock
        self._job_polls, self._job_poll_s = job_polls, job_poll_s

    async def run_once(self) -> int:
        """Push every changed count once; returns how many G2A accepted."""
        async with self._store.transaction() as tx:
            links = await tx.merchant.list_links()
            offers = [await tx.offers.get(link.offer_id) for link in links]
            pools = {o.key_pool_id for o in offers if o is not None and o.key_pool_id}
            counts = await tx.pools.available_counts(pools)
        accepted = 0
        for link, offer in zip(links, offers, strict=True):
            if offer is None:
                continue
            size = _size(offer, counts)
            if size == link.synced_size and link.sync_error is None:
                continue
            error = await self._push(link.g2a_offer_id, size)
            await self._record(link, size, error)
            accepted += error is None
        return accepted

    async def _push(self, g2a_offer_id: str, size: int) -> str | None:
        """None when G2A applied `size`, else why not (an error code)."""
        try:
            job_id = (await self._marketplace.publish_offer_stock(g2a_offer_id, size)).job_id
            for _ in range(self._job_polls):
                if job_id is None:
                    return None
                outcome = await self._marketplace.job_status(job_id)
                if outcome.finished:
                    return outcome.error_code
                await asyncio.sleep(self._job_poll_s)
        except UpstreamError as error:
            return error.code or type(error).__name__
        return "job_pending"

    async def _record(self, link: G2AOfferLink, size: int, error: str | None) -> None:
        async with self._store.transaction() as tx:
            current = await tx.merchant.get_link(link.offer_id)
            if current is None or current.g2a_offer_id != link.g2a_offer_id:
                return  # relinked meanwhile: the next run pushes to the new offer
            done = error is None
            await tx.merchant.save_link(
                attrs.evolve(
                    current,
                    synced_size=size if done else current.synced_size,
                    synced_at=self._clock.now() if done else current.synced_at,
                    sync_error=error,
                )
            )
        if done:
            log.info("g2a.stock_synced", offer_id=str(link.offer_id), size=size)
        else:
            log.warning("g2a.stock_sync_failed", offer_id=str(link.offer_id), code=error)


def _size(offer: Offer, counts: Mapping[PoolId, int]) -> int:
    """What G2A should show: the available keys (at most 10,000), 0 unless the offer is active."""
    if offer.status is not OfferStatus.ACTIVE or offer.key_pool_id is None:
        return 0
    return inventory_size(counts.get(offer.key_pool_id, 0))
