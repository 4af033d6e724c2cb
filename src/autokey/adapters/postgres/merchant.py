"""PostgreSQL MerchantRepository: the G2A merchant tables of migration 0009."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from autokey.adapters.postgres import sql
from autokey.adapters.postgres.connection import MIN_UUID, SqlRepository, page_of, translated
from autokey.adapters.postgres.rows import id_array, json_rows, params
from autokey.domain.model import merchant
from autokey.domain.model.errors import DuplicateResource
from autokey.domain.model.ids import OfferId, SubjectId
from autokey.domain.model.offers import Offer
from autokey.domain.model.pages import Page, PageRequest
from autokey.ports.store import MerchantRepository

_TOKEN_GRACE_S: Final = 86400


def _order_ref(order_ref: str) -> int | None:
    """G2A order ids are integers; anything else can only be autokey's own id."""
    return int(order_ref) if order_ref.isdigit() and len(order_ref) < 19 else None


class PostgresMerchantRepository(SqlRepository, MerchantRepository):
    async def add_credential(self, credential: merchant.MerchantCredential) -> None:
        if not await self._run(sql.INSERT_CREDENTIAL, params(credential)):
            raise DuplicateResource(resource="merchant_credential", id=credential.client_id)

    async def get_credential(self, client_id: str) -> merchant.MerchantCredential | None:
        return await self._entity(
            merchant.MerchantCredential, sql.MERCHANT_CREDENTIAL, (client_id,)
        )

    async def revoke_credential(self, client_id: str, at: datetime) -> bool:
        if not await self._run(sql.REVOKE_CREDENTIAL, (at, client_id)):
            return False
        await self._run(sql.DROP_MERCHANT_TOKENS_OF_CLIENT, (client_id,))
        return True

    async def add_access_token(self, token: merchant.MerchantAccessToken) -> None:
        await self._run(
            sql.PRUNE_MERCHANT_TOKENS, (token.expires_at - timedelta(seconds=_TOKEN_GRACE_S),)
        )
        await self._run(sql.INSERT_MERCHANT_TOKEN, params(token))

    async def find_access_token(self, token_hash: bytes) -> merchant.MerchantAccessToken | None:
        return await self._entity(merchant.MerchantAccessToken, sql.MERCHANT_TOKEN, (token_hash,))

    async def find_linked_offers(
        self, products: Collection[tuple[SubjectId, str]]
    ) -> Mapping[tuple[SubjectId, str], Offer]:
        pairs = sorted(set(products))
        found = await self._entities(
            Offer,
            sql.LINKED_OFFERS,
            (id_array(s for s, _ in pairs), [p for _, p in pairs]),
        )
        linked = {(o.seller_id, o.g2a_product_id): o for o in found}
        return {pair: linked[pair] for pair in pairs if pair in linked}

    async def add_reservation(self, reservation: merchant.Reservation) -> None:
        if not await self._run(sql.INSERT_RESERVATION, params(reservation)):
            raise DuplicateResource(resource="reservation", id=reservation.id)

    async def save_reservation(self, reservation: merchant.Reservation) -> None:
        await self._run(sql.SAVE_RESERVATION, params(reservation))

    async def get_reservation(
        self, seller_id: SubjectId, reservation_id: str, *, for_update: bool = False
    ) -> merchant.Reservation | None:
        query = sql.locked(sql.RESERVATION) if for_update else sql.RESERVATION
        return await self._entity(merchant.Reservation, query, (reservation_id, seller_id))

    async def get_reservations(
        self, wanted: Collection[tuple[SubjectId, str]], *, for_update: bool = False
    ) -> Mapping[tuple[SubjectId, str], merchant.Reservation]:
        query = sql.locked(sql.RESERVATIONS_BY_IDS) if for_update else sql.RESERVATIONS_BY_IDS
        pairs = sorted(set(wanted))
        found = await self._entities(
            merchant.Reservation,
            query,
            (id_array(s for s, _ in pairs), [i for _, i in pairs]),
            batch=len(pairs),
        )
        return {(r.seller_id, r.id): r for r in found}

    async def add_reservations(self, reservations: Sequence[merchant.Reservation]) -> None:
        # One statement, queued, not waited for (fresh ids): it travels with the next
        # statement or COMMIT.
        if reservations:
            await self._send(sql.INSERT_RESERVATIONS, (json_rows(map(params, reservations)),))

    async def save_reservations(self, reservations: Sequence[merchant.Reservation]) -> None:
        if len(reservations) == 1:  # by primary key, as `PostgresOrderRepository.save_many`
            await self._send(sql.SAVE_RESERVATION, params(reservations[0]))
        elif reservations:
            rows = json_rows(map(params, reservations))
            await self._send(sql.SAVE_RESERVATIONS, (rows,), batch=len(reservations))

    async def list_reservations(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[merchant.Reservation]:
        after = str(page.after or MIN_UUID)
        rows = await self._entities(
            merchant.Reservation, sql.RESERVATIONS_OF_SELLER, (seller_id, after, page.limit + 1)
        )
        return page_of(rows, page.limit, lambda r: UUID(r.id))

    async def find_ordered(
        self, seller_id: SubjectId, order_ref: str
    ) -> merchant.Reservation | None:
        return await self._entity(
            merchant.Reservation,
            sql.ORDERED_RESERVATION,
            (seller_id, order_ref, _order_ref(order_ref), order_ref),
        )

    async def add_returned_keys(self, returned: Sequence[merchant.ReturnedKey]) -> int:
        added = 0
        for r in returned:
            added += await self._run(sql.INSERT_RETURNED, params(r))
        return added

    async def list_returned_keys(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[merchant.ReturnedKey]:
        return await self._owned_page(
            merchant.ReturnedKey, sql.RETURNED_OF_SELLER, seller_id, page, lambda r: r.key_id
        )

    async def add_notification(self, notification: merchant.MerchantNotification) -> None:
        await self._run(sql.INSERT_NOTIFICATION, params(notification))

    async def list_notifications(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[merchant.MerchantNotification]:
        return await self._owned_page(
            merchant.MerchantNotification,
            sql.NOTIFICATIONS_OF_SELLER,
            seller_id,
            page,
            lambda n: n.id,
        )

    async def save_link(self, link: merchant.G2AOfferLink) -> None:
        # In a savepoint: a G2A offer id another offer holds raises DuplicateResource and
        # leaves the transaction usable.
        with translated("g2a_offer", link.g2a_offer_id):
            async with self._conn.transaction():
                await self._conn.execute(sql.SAVE_OFFER_LINK, params(link))

    async def get_link(self, offer_id: OfferId) -> merchant.G2AOfferLink | None:
        return await self._entity(merchant.G2AOfferLink, sql.OFFER_LINK, (offer_id,))

    async def list_links(self) -> Sequence[merchant.G2AOfferLink]:
        return await self._entities(merchant.G2AOfferLink, sql.OFFER_LINKS, ())

    async def find_link(
        self, seller_id: SubjectId, g2a_offer_id: str
    ) -> merchant.G2AOfferLink | None:
        return await self._entity(
            merchant.G2AOfferLink, sql.OFFER_LINK_BY_G2A_OFFER, (seller_id, g2a_offer_id)
        )
