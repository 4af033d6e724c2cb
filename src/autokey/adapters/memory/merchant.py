"""In-memory MerchantRepository (the reference for the SQL adapters)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from uuid import UUID

import attrs

from autokey.adapters.memory.tables import Journal, Tables, copy, page_of
from autokey.adapters.one_by_one import MerchantOneByOne
from autokey.domain.model import merchant
from autokey.domain.model.errors import DuplicateResource
from autokey.domain.model.ids import OfferId, SubjectId
from autokey.domain.model.offers import DeliveryType, Offer, OfferStatus
from autokey.domain.model.pages import Page, PageRequest


class MemoryMerchantRepository(MerchantOneByOne):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._m, self._offers, self._j = t.merchant, t.offers, j

    async def add_credential(self, credential: merchant.MerchantCredential) -> None:
        if credential.client_id in self._m.credentials:
            raise DuplicateResource(resource="merchant_credential", id=credential.client_id)
        self._j.put(self._m.credentials, credential.client_id, credential)

    async def get_credential(self, client_id: str) -> merchant.MerchantCredential | None:
        return self._m.credentials.get(client_id)

    async def revoke_credential(self, client_id: str, at: datetime) -> bool:
        found = self._m.credentials.get(client_id)
        if found is None or found.revoked_at is not None:
            return False
        self._j.put(self._m.credentials, client_id, attrs.evolve(found, revoked_at=at))
        for token_hash, token in list(self._m.tokens.items()):
            if token.client_id == client_id:
                self._j.delete(self._m.tokens, token_hash)
        return True

    async def add_access_token(self, token: merchant.MerchantAccessToken) -> None:
        self._j.put(self._m.tokens, token.token_hash, token)

    async def find_access_token(self, token_hash: bytes) -> merchant.MerchantAccessToken | None:
        return self._m.tokens.get(token_hash)

    async def find_linked_offers(
        self, products: Collection[tuple[SubjectId, str]]
    ) -> Mapping[tuple[SubjectId, str], Offer]:
        return {
            (offer.seller_id, offer.g2a_product_id): copy(offer)
            for offer in self._offers.values()
            if offer.g2a_product_id is not None
            and (offer.seller_id, offer.g2a_product_id) in products
            and offer.status is OfferStatus.ACTIVE
            and offer.delivery_type is DeliveryType.AUTO_KEY
        }

    async def add_reservation(self, reservation: merchant.Reservation) -> None:
        if reservation.id in self._m.reservations:
            raise DuplicateResource(resource="reservation", id=reservation.id)
        self._j.put(self._m.reservations, reservation.id, copy(reservation))

    async def save_reservation(self, reservation: merchant.Reservation) -> None:
        self._j.put(self._m.reservations, reservation.id, copy(reservation))

    async def get_reservation(
        self, seller_id: SubjectId, reservation_id: str, *, for_update: bool = False
    ) -> merchant.Reservation | None:
        found = self._m.reservations.get(reservation_id)
        return copy(found) if found is not None and found.seller_id == seller_id else None

    async def list_reservations(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[merchant.Reservation]:
        mine = [r for r in self._m.reservations.values() if r.seller_id == seller_id]
        return page_of(mine, page, lambda r: UUID(r.id))

    async def find_ordered(
        self, seller_id: SubjectId, order_ref: str
    ) -> merchant.Reservation | None:
        for r in self._m.reservations.values():
            if (
                r.seller_id == seller_id
                and r.state is merchant.ReservationState.ORDERED
                and order_ref in (r.id, str(r.g2a_order_id))
            ):
                return copy(r)
        return None

    async def add_returned_keys(self, returned: Sequence[merchant.ReturnedKey]) -> int:
        new = [r for r in returned if r.key_id not in self._m.returned]
        for r in new:
            self._j.put(self._m.returned, r.key_id, r)
        return len(new)

    async def list_returned_keys(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[merchant.ReturnedKey]:
        mine = [r for r in self._m.returned.values() if r.seller_id == seller_id]
        return page_of(mine, page, lambda r: r.key_id)

    async def add_notification(self, notification: merchant.MerchantNotification) -> None:
        self._j.append(self._m.notifications, [notification])

    async def list_notifications(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[merchant.MerchantNotification]:
        mine = [n for n in self._m.notifications if n.seller_id == seller_id]
        return page_of(mine, page, lambda n: n.id)

    async def save_link(self, link: merchant.G2AOfferLink) -> None:
        other = await self.find_link(link.seller_id, link.g2a_offer_id)
        if other is not None and other.offer_id != link.offer_id:
            raise DuplicateResource(resource="g2a_offer", id=link.g2a_offer_id)
        self._j.put(self._m.links, link.offer_id, copy(link))

    async def get_link(self, offer_id: OfferId) -> merchant.G2AOfferLink | None:
        found = self._m.links.get(offer_id)
        return None if found is None else copy(found)

    async def list_links(self) -> Sequence[merchant.G2AOfferLink]:
        return [copy(self._m.links[k]) for k in sorted(self._m.links)]

    async def find_link(
        self, seller_id: SubjectId, g2a_offer_id: str
    ) -> merchant.G2AOfferLink | None:
        for link in self._m.links.values():
            if link.seller_id == seller_id and link.g2a_offer_id == g2a_offer_id:
                return copy(link)
        return None
