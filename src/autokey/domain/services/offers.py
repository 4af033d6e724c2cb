"""Offers: drafts, publishing, status, and availability computed from live stock."""

from __future__ import annotations

import attrs

from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import DuplicateResource, InvalidInput
from autokey.domain.model.ids import OfferId, SubjectId
from autokey.domain.model.offers import (
    Availability,
    Offer,
    OfferDraft,
    OfferStatus,
    StockLevel,
)
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.services.stock import sweep_stock_levels
from autokey.ports.store import Store, UnitOfWork
from autokey.ports.system import Clock, IdGenerator


@attrs.frozen(kw_only=True)
class OfferView:
    offer: Offer
    available_keys: int

    @property
    def availability(self) -> Availability:
        return self.offer.availability(self.available_keys)

    @property
    def stock_level(self) -> StockLevel:
        return self.offer.stock_level(self.available_keys)


async def _view(tx: UnitOfWork, offer: Offer) -> OfferView:
    if offer.key_pool_id is None:
        return OfferView(offer=offer, available_keys=0)
    counts = await tx.pools.available_counts([offer.key_pool_id])
    return OfferView(offer=offer, available_keys=counts[offer.key_pool_id])


async def _owned_offer(tx: UnitOfWork, principal: Principal, offer_id: OfferId) -> Offer:
    principal.require(Role.SELLER, action="manage_offers")
    return principal.must_own(await tx.offers.get(offer_id), "offer", offer_id)


async def linked_offer(tx: UnitOfWork, seller_id: SubjectId, product_id: str) -> Offer | None:
    """The seller's active AUTO_KEY offer sold on G2A as `product_id`, if any."""
    product = (seller_id, product_id)
    return (await tx.merchant.find_linked_offers([product])).get(product)


async def _ensure_listable(tx: UnitOfWork, offer: Offer) -> None:
    """DuplicateResource when another active AUTO_KEY offer of the seller is sold on G2A
    as the same product (a G2A reservation names the product, so it must pick one pool)."""
    product_id = offer.sold_on_g2a_as
    if product_id is None:
        return
    other = await linked_offer(tx, offer.seller_id, product_id)
    if other is not None and other.id != offer.id:
        raise DuplicateResource(resource="g2aProductId", id=product_id)


class OfferService:
    def __init__(self, store: Store, clock: Clock, ids: IdGenerator) -> None:
        self._store, self._clock, self._ids = store, clock, ids

    async def save_draft(self, principal: Principal, draft: OfferDraft) -> OfferView:
        """Create a draft, or update the fields of an existing offer (its status is kept)."""
        principal.require(Role.SELLER, action="manage_offers")
        now = self._clock.now()
        async with self._store.transaction() as tx:
            if draft.key_pool_id is not None:
                pool = await tx.pools.get(draft.key_pool_id)
                if pool is None or not principal.owns(pool.seller_id):
                    raise InvalidInput.of("key_pool_id", "unknown_key_pool")
            if draft.id is None:
                offer_id, seller_id = OfferId(self._ids.new_id()), principal.subject
                offer = Offer.from_draft(draft, id=offer_id, seller_id=seller_id, now=now)
                await tx.offers.add(offer)
            else:
                offer = (await _owned_offer(tx, principal, draft.id)).revised(draft, now)
                await _ensure_listable(tx, offer)
                await tx.offers.save(offer)
            return await _view(tx, offer)

    async def set_status(
        self, principal: Principal, offer_id: OfferId, status: OfferStatus
    ) -> OfferView:
        """Publish (draft -> active) or switch between active and inactive."""
        async with self._store.transaction() as tx:
            offer = await _owned_offer(tx, principal, offer_id)
            offer.set_status(status, self._clock.now())
            await _ensure_listable(tx, offer)
            await tx.offers.save(offer)
            return await _view(tx, offer)

    async def sweep_stock_levels(self) -> int:
        """Housekeeping: announce every active AUTO_KEY offer whose stock level crossed
        since it was last recorded; returns how many crossed."""
        return await sweep_stock_levels(self._store, self._ids, self._clock)

    async def list_for_seller(self, principal: Principal, page: PageRequest) -> Page[OfferView]:
        principal.require(Role.SELLER, action="list_offers")
        async with self._store.transaction() as tx:
            offers = await tx.offers.list_for_seller(principal.subject, page)
            pools = {o.key_pool_id for o in offers.items if o.key_pool_id is not None}
            counts = await tx.pools.available_counts(pools)
        views = [
            OfferView(offer=o, available_keys=counts.get(o.key_pool_id, 0) if o.key_pool_id else 0)
            for o in offers.items
        ]
        return Page(items=views, next_after=offers.next_after)

    async def get(self, principal: Principal, offer_id: OfferId) -> OfferView:
        """Anyone authenticated reads an active offer; drafts and inactive ones only their owner."""
        async with self._store.transaction() as tx:
            offer = await tx.offers.get(offer_id)
            if offer is None or offer.status is not OfferStatus.ACTIVE:
                offer = principal.must_own(offer, "offer", offer_id)
            return await _view(tx, offer)
