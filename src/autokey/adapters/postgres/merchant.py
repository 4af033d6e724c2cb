"""PostgreSQL MerchantRepository: the G2A merchant tables of migration 0009."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from autokey.adapters.merchant_rows import lines_from, lines_value
from autokey.adapters.postgres import store as base
from autokey.domain.model.errors import DuplicateResource
from autokey.domain.model.ids import KeyId, OfferId, PoolId, SubjectId
from autokey.domain.model.merchant import (
    G2AOfferLink,
    MerchantAccessToken,
    MerchantCredential,
    MerchantNotification,
    Reservation,
    ReservationState,
    ReturnedKey,
)
from autokey.domain.model.offers import Offer
from autokey.domain.model.pages import Page, PageRequest
from autokey.ports.store import MerchantRepository

_INSERT_CREDENTIAL: Final = """
INSERT INTO g2a_merchant_credentials (client_id, seller_id, name, secret_hash, created_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
_CREDENTIAL: Final = """
SELECT client_id, seller_id, name, secret_hash, created_at, revoked_at
FROM g2a_merchant_credentials WHERE client_id = %s
"""
_REVOKE_CREDENTIAL: Final = """
UPDATE g2a_merchant_credentials SET revoked_at = %s
WHERE client_id = %s AND revoked_at IS NULL
"""
_DROP_TOKENS_OF_CLIENT: Final = "DELETE FROM g2a_merchant_tokens WHERE client_id = %s"
# Issuing a token prunes those that expired more than a day before the new one expires, so
# the table stays small without a job of its own.
_PRUNE_TOKENS: Final = "DELETE FROM g2a_merchant_tokens WHERE expires_at < %s"
_INSERT_TOKEN: Final = """
INSERT INTO g2a_merchant_tokens (token_hash, client_id, seller_id, expires_at)
VALUES (%s, %s, %s, %s)
"""
_TOKEN: Final = """
SELECT token_hash, client_id, seller_id, expires_at FROM g2a_merchant_tokens
WHERE token_hash = %s
"""
_LINKED_OFFER: Final = f"""
SELECT {base.OFFER_COLUMNS}
FROM offers
WHERE seller_id = %s AND g2a_product_id = %s AND status = 'active' AND delivery_type = 'AUTO_KEY'
"""
# Walks the partial claim index (0003) and stops at the cap.
_AVAILABLE_UP_TO: Final = """
SELECT count(*) FROM (
    SELECT 1 FROM keys WHERE pool_id = %s AND status = 'AVAILABLE' LIMIT %s
) AS capped
"""
_RESERVATION_COLUMNS: Final = (
    "id, seller_id, state, lines, created_at, expires_at, g2a_order_id, ordered_at"
)
_INSERT_RESERVATION: Final = f"""
INSERT INTO g2a_reservations ({_RESERVATION_COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
_SAVE_RESERVATION: Final = """
UPDATE g2a_reservations SET state = %s, expires_at = %s, g2a_order_id = %s, ordered_at = %s
WHERE id = %s
"""
_RESERVATION: Final = f"""
SELECT {_RESERVATION_COLUMNS} FROM g2a_reservations WHERE id = %s AND seller_id = %s
"""
_RESERVATION_FOR_UPDATE: Final = _RESERVATION + " FOR UPDATE"
_RESERVATIONS_OF_SELLER: Final = f"""
SELECT {_RESERVATION_COLUMNS} FROM g2a_reservations
WHERE seller_id = %s AND id > %s
ORDER BY id LIMIT %s
"""
_ORDERED: Final = f"""
SELECT {_RESERVATION_COLUMNS} FROM g2a_reservations
WHERE seller_id = %s AND state = 'ordered' AND (id = %s OR g2a_order_id = %s)
ORDER BY id = %s DESC
LIMIT 1
"""
_INSERT_RETURNED: Final = """
INSERT INTO g2a_returned_keys (key_id, seller_id, reservation_id, returned_at)
VALUES (%s, %s, %s, %s)
ON CONFLICT (key_id) DO NOTHING
"""
_RETURNED_OF_SELLER: Final = """
SELECT key_id, seller_id, reservation_id, returned_at FROM g2a_returned_keys
WHERE seller_id = %s AND key_id > %s
ORDER BY key_id LIMIT %s
"""
_INSERT_NOTIFICATION: Final = """
INSERT INTO g2a_notifications (
    id, seller_id, type, date, message, auction_id, g2a_offer_id, received_at
)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""
_NOTIFICATIONS_OF_SELLER: Final = """
SELECT id, seller_id, type, date, message, auction_id, g2a_offer_id, received_at
FROM g2a_notifications
WHERE seller_id = %s AND id > %s
ORDER BY id LIMIT %s
"""
_LINK_COLUMNS: Final = "offer_id, seller_id, g2a_offer_id, synced_size, synced_at, sync_error"
_SAVE_LINK: Final = f"""
INSERT INTO g2a_offer_links ({_LINK_COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (offer_id) DO UPDATE SET
    g2a_offer_id = excluded.g2a_offer_id, synced_size = excluded.synced_size,
    synced_at = excluded.synced_at, sync_error = excluded.sync_error
"""
_LINK: Final = f"SELECT {_LINK_COLUMNS} FROM g2a_offer_links WHERE offer_id = %s"
_LINKS: Final = f"SELECT {_LINK_COLUMNS} FROM g2a_offer_links ORDER BY offer_id"
_LINK_BY_G2A_OFFER: Final = f"""
SELECT {_LINK_COLUMNS} FROM g2a_offer_links WHERE seller_id = %s AND g2a_offer_id = %s
"""
_TOKEN_GRACE_S: Final = 86400


def _credential(row: TupleRow) -> MerchantCredential:
    return MerchantCredential(
        client_id=row[0],
        seller_id=SubjectId(row[1]),
        name=row[2],
        secret_hash=bytes(row[3]),
        created_at=row[4],
        revoked_at=row[5],
    )


def _reservation(row: TupleRow) -> Reservation:
    return Reservation(
        id=row[0],
        seller_id=SubjectId(row[1]),
        state=ReservationState(row[2]),
        lines=lines_from(row[3]),
        created_at=row[4],
        expires_at=row[5],
        g2a_order_id=row[6],
        ordered_at=row[7],
    )


def _link(row: TupleRow) -> G2AOfferLink:
    return G2AOfferLink(
        offer_id=OfferId(row[0]),
        seller_id=SubjectId(row[1]),
        g2a_offer_id=row[2],
        synced_size=row[3],
        synced_at=row[4],
        sync_error=row[5],
    )


def _order_ref(order_ref: str) -> int | None:
    """G2A order ids are integers; anything else can only be autokey's own id."""
    return int(order_ref) if order_ref.isdigit() and len(order_ref) < 19 else None


class PostgresMerchantRepository(MerchantRepository):
    def __init__(self, conn: base.Conn, pipeline: psycopg.AsyncPipeline | None = None) -> None:
        self._sql = base._Sql(conn, pipeline)

    async def add_credential(self, credential: MerchantCredential) -> None:
        params = (
            credential.client_id,
            credential.seller_id,
            credential.name,
            credential.secret_hash,
            credential.created_at,
        )
        if not await self._sql._run(_INSERT_CREDENTIAL, params):
            raise DuplicateResource(resource="merchant_credential", id=credential.client_id)

    async def get_credential(self, client_id: str) -> MerchantCredential | None:
        row = await self._sql._one(_CREDENTIAL, (client_id,))
        return None if row is None else _credential(row)

    async def revoke_credential(self, client_id: str, at: datetime) -> bool:
        if not await self._sql._run(_REVOKE_CREDENTIAL, (at, client_id)):
            return False
        await self._sql._run(_DROP_TOKENS_OF_CLIENT, (client_id,))
        return True

    async def add_access_token(self, token: MerchantAccessToken) -> None:
        await self._sql._run(_PRUNE_TOKENS, (token.expires_at - timedelta(seconds=_TOKEN_GRACE_S),))
        await self._sql._run(
            _INSERT_TOKEN, (token.token_hash, token.client_id, token.seller_id, token.expires_at)
        )

    async def find_access_token(self, token_hash: bytes) -> MerchantAccessToken | None:
        row = await self._sql._one(_TOKEN, (token_hash,))
        if row is None:
            return None
        return MerchantAccessToken(
            token_hash=bytes(row[0]),
            client_id=row[1],
            seller_id=SubjectId(row[2]),
            expires_at=row[3],
        )

    async def find_linked_offer(self, seller_id: SubjectId, product_id: str) -> Offer | None:
        row = await self._sql._one(_LINKED_OFFER, (seller_id, product_id))
        return None if row is None else base._offer_from_row(row)

    async def available_up_to(self, pool_id: PoolId, cap: int) -> int:
        row = await self._sql._one(_AVAILABLE_UP_TO, (pool_id, cap))
        return 0 if row is None else int(row[0])

    async def add_reservation(self, reservation: Reservation) -> None:
        params = (
            reservation.id,
            reservation.seller_id,
            reservation.state.value,
            Jsonb(lines_value(reservation.lines)),
            reservation.created_at,
            reservation.expires_at,
            reservation.g2a_order_id,
            reservation.ordered_at,
        )
        if not await self._sql._run(_INSERT_RESERVATION, params):
            raise DuplicateResource(resource="reservation", id=reservation.id)

    async def save_reservation(self, reservation: Reservation) -> None:
        await self._sql._run(
            _SAVE_RESERVATION,
            (
                reservation.state.value,
                reservation.expires_at,
                reservation.g2a_order_id,
                reservation.ordered_at,
                reservation.id,
            ),
        )

    async def get_reservation(
        self, seller_id: SubjectId, reservation_id: str, *, for_update: bool = False
    ) -> Reservation | None:
        query = _RESERVATION_FOR_UPDATE if for_update else _RESERVATION
        row = await self._sql._one(query, (reservation_id, seller_id))
        return None if row is None else _reservation(row)

    async def list_reservations(self, seller_id: SubjectId, page: PageRequest) -> Page[Reservation]:
        after = str(page.after or base._MIN_UUID)
        rows = await self._sql._all(_RESERVATIONS_OF_SELLER, (seller_id, after, page.limit + 1))
        return base._page([_reservation(r) for r in rows], page.limit, lambda r: UUID(r.id))

    async def find_ordered(self, seller_id: SubjectId, order_ref: str) -> Reservation | None:
        row = await self._sql._one(
            _ORDERED, (seller_id, order_ref, _order_ref(order_ref), order_ref)
        )
        return None if row is None else _reservation(row)

    async def add_returned_keys(self, returned: Sequence[ReturnedKey]) -> int:
        added = 0
        for r in returned:
            added += await self._sql._run(
                _INSERT_RETURNED, (r.key_id, r.seller_id, r.reservation_id, r.returned_at)
            )
        return added

    async def list_returned_keys(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[ReturnedKey]:
        rows = await self._sql._all(
            _RETURNED_OF_SELLER, (seller_id, page.after or base._MIN_UUID, page.limit + 1)
        )
        found = [
            ReturnedKey(
                key_id=KeyId(r[0]), seller_id=SubjectId(r[1]), reservation_id=r[2], returned_at=r[3]
            )
            for r in rows
        ]
        return base._page(found, page.limit, lambda r: r.key_id)

    async def add_notification(self, notification: MerchantNotification) -> None:
        n = notification
        await self._sql._run(
            _INSERT_NOTIFICATION,
            (
                n.id,
                n.seller_id,
                n.type,
                n.date,
                n.message,
                n.auction_id,
                n.g2a_offer_id,
                n.received_at,
            ),
        )

    async def list_notifications(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[MerchantNotification]:
        rows = await self._sql._all(
            _NOTIFICATIONS_OF_SELLER, (seller_id, page.after or base._MIN_UUID, page.limit + 1)
        )
        found = [
            MerchantNotification(
                id=r[0],
                seller_id=SubjectId(r[1]),
                type=r[2],
                date=r[3],
                message=r[4],
                auction_id=r[5],
                g2a_offer_id=r[6],
                received_at=r[7],
            )
            for r in rows
        ]
        return base._page(found, page.limit, lambda n: n.id)

    async def save_link(self, link: G2AOfferLink) -> None:
        params = (
            link.offer_id,
            link.seller_id,
            link.g2a_offer_id,
            link.synced_size,
            link.synced_at,
            link.sync_error,
        )
        # In a savepoint: a G2A offer id another offer holds raises DuplicateResource and
        # leaves the transaction usable.
        with base._translated("g2a_offer", link.g2a_offer_id):
            async with self._sql._conn.transaction():
                await self._sql._conn.execute(_SAVE_LINK, params)

    async def get_link(self, offer_id: OfferId) -> G2AOfferLink | None:
        row = await self._sql._one(_LINK, (offer_id,))
        return None if row is None else _link(row)

    async def list_links(self) -> Sequence[G2AOfferLink]:
        return [_link(row) for row in await self._sql._all(_LINKS, ())]

    async def find_link(self, seller_id: SubjectId, g2a_offer_id: str) -> G2AOfferLink | None:
        row = await self._sql._one(_LINK_BY_G2A_OFFER, (seller_id, g2a_offer_id))
        return None if row is None else _link(row)
