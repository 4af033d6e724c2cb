"""SQLite MerchantRepository: the G2A merchant tables of migration 0009. The one writer lock
of a SQLite transaction already serialises reservations, so `for_update` needs nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from autokey.adapters.merchant_rows import lines_from, lines_text
from autokey.adapters.one_by_one import MerchantOneByOne
from autokey.adapters.sql_literals import literal
from autokey.adapters.sqlite import rows, sql
from autokey.adapters.sqlite.connection import Session, limit_of, page_of
from autokey.domain.model import merchant
from autokey.domain.model.ids import KeyId, OfferId, SubjectId
from autokey.domain.model.offers import DeliveryType, Offer, OfferStatus
from autokey.domain.model.pages import Page, PageRequest

_INSERT_CREDENTIAL: Final = """
INSERT INTO g2a_merchant_credentials (client_id, seller_id, name, secret_hash, created_at)
VALUES (:client_id, :seller_id, :name, :secret_hash, :created_at)
"""
_CREDENTIAL: Final = """
SELECT client_id, seller_id, name, secret_hash, created_at, revoked_at
FROM g2a_merchant_credentials WHERE client_id = :client_id
"""
_REVOKE_CREDENTIAL: Final = """
UPDATE g2a_merchant_credentials SET revoked_at = :at
WHERE client_id = :client_id AND revoked_at IS NULL
"""
_DROP_TOKENS_OF_CLIENT: Final = "DELETE FROM g2a_merchant_tokens WHERE client_id = :client_id"
_INSERT_TOKEN: Final = """
INSERT INTO g2a_merchant_tokens (token_hash, client_id, seller_id, expires_at)
VALUES (:token_hash, :client_id, :seller_id, :expires_at)
"""
_TOKEN: Final = """
SELECT token_hash, client_id, seller_id, expires_at FROM g2a_merchant_tokens
WHERE token_hash = :token_hash
"""
_LINKED_OFFER: Final = f"""
SELECT {sql.OFFER_COLUMNS}
FROM offers
WHERE seller_id = :seller_id AND g2a_product_id = :product_id
  AND status = {literal(OfferStatus.ACTIVE)} AND delivery_type = {literal(DeliveryType.AUTO_KEY)}
"""
_RESERVATION_COLUMNS: Final = (
    "id, seller_id, state, lines, created_at, expires_at, g2a_order_id, ordered_at"
)
_INSERT_RESERVATION: Final = f"""
INSERT INTO g2a_reservations ({_RESERVATION_COLUMNS})
VALUES (:id, :seller_id, :state, :lines, :created_at, :expires_at, :g2a_order_id, :ordered_at)
"""
_SAVE_RESERVATION: Final = """
UPDATE g2a_reservations
SET state = :state, expires_at = :expires_at, g2a_order_id = :g2a_order_id,
    ordered_at = :ordered_at
WHERE id = :id
"""
_RESERVATION: Final = f"""
SELECT {_RESERVATION_COLUMNS} FROM g2a_reservations WHERE id = :id AND seller_id = :seller_id
"""
_RESERVATIONS_OF_SELLER: Final = f"""
SELECT {_RESERVATION_COLUMNS} FROM g2a_reservations
WHERE seller_id = :seller_id AND id > :after
ORDER BY id LIMIT :limit
"""
_ORDERED: Final = f"""
SELECT {_RESERVATION_COLUMNS} FROM g2a_reservations
WHERE seller_id = :seller_id AND state = {literal(merchant.ReservationState.ORDERED)}
    AND (id = :ref OR g2a_order_id = :g2a_ref)
ORDER BY id = :ref DESC
LIMIT 1
"""
_INSERT_RETURNED: Final = """
INSERT INTO g2a_returned_keys (key_id, seller_id, reservation_id, returned_at)
VALUES (:key_id, :seller_id, :reservation_id, :returned_at)
ON CONFLICT (key_id) DO NOTHING
"""
_RETURNED_OF_SELLER: Final = """
SELECT key_id, seller_id, reservation_id, returned_at FROM g2a_returned_keys
WHERE seller_id = :seller_id AND key_id > :after
ORDER BY key_id LIMIT :limit
"""
_INSERT_NOTIFICATION: Final = """
INSERT INTO g2a_notifications (
    id, seller_id, type, date, message, auction_id, g2a_offer_id, received_at
)
VALUES (
    :id, :seller_id, :type, :date, :message, :auction_id, :g2a_offer_id, :received_at
)
"""
_NOTIFICATIONS_OF_SELLER: Final = """
SELECT id, seller_id, type, date, message, auction_id, g2a_offer_id, received_at
FROM g2a_notifications
WHERE seller_id = :seller_id AND id > :after
ORDER BY id LIMIT :limit
"""
_LINK_COLUMNS: Final = "offer_id, seller_id, g2a_offer_id, synced_size, synced_at, sync_error"
_SAVE_LINK: Final = f"""
INSERT INTO g2a_offer_links ({_LINK_COLUMNS})
VALUES (:offer_id, :seller_id, :g2a_offer_id, :synced_size, :synced_at, :sync_error)
ON CONFLICT (offer_id) DO UPDATE SET
    g2a_offer_id = excluded.g2a_offer_id, synced_size = excluded.synced_size,
    synced_at = excluded.synced_at, sync_error = excluded.sync_error
"""
_LINK: Final = f"SELECT {_LINK_COLUMNS} FROM g2a_offer_links WHERE offer_id = :offer_id"
_LINKS: Final = f"SELECT {_LINK_COLUMNS} FROM g2a_offer_links ORDER BY offer_id"
_LINK_BY_G2A_OFFER: Final = f"""
SELECT {_LINK_COLUMNS} FROM g2a_offer_links
WHERE seller_id = :seller_id AND g2a_offer_id = :g2a_offer_id
"""


def _reservation(row: sqlite3.Row) -> merchant.Reservation:
    return merchant.Reservation(
        id=row["id"],
        seller_id=SubjectId(rows.uuid_val(row["seller_id"])),
        state=merchant.ReservationState(row["state"]),
        lines=lines_from(row["lines"]),
        created_at=rows.time_val(row["created_at"]),
        expires_at=rows.time_val(row["expires_at"]),
        g2a_order_id=row["g2a_order_id"],
        ordered_at=rows.opt_time_val(row["ordered_at"]),
    )


def _reservation_params(r: merchant.Reservation) -> dict[str, Any]:
    return {
        "id": r.id,
        "seller_id": r.seller_id.bytes,
        "state": r.state.value,
        "lines": lines_text(r.lines),
        "created_at": rows.time_col(r.created_at),
        "expires_at": rows.time_col(r.expires_at),
        "g2a_order_id": r.g2a_order_id,
        "ordered_at": rows.opt_time_col(r.ordered_at),
    }


def _link(row: sqlite3.Row) -> merchant.G2AOfferLink:
    return merchant.G2AOfferLink(
        offer_id=OfferId(rows.uuid_val(row["offer_id"])),
        seller_id=SubjectId(rows.uuid_val(row["seller_id"])),
        g2a_offer_id=row["g2a_offer_id"],
        synced_size=row["synced_size"],
        synced_at=rows.opt_time_val(row["synced_at"]),
        sync_error=row["sync_error"],
    )


def _g2a_ref(order_ref: str) -> int | None:
    """G2A order ids are integers; anything else can only be autokey's own id."""
    return int(order_ref) if order_ref.isdigit() and len(order_ref) < 19 else None


class SqliteMerchantRepository(MerchantOneByOne):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def add_credential(self, credential: merchant.MerchantCredential) -> None:
        await self._db.execute(
            _INSERT_CREDENTIAL,
            {
                "client_id": credential.client_id,
                "seller_id": credential.seller_id.bytes,
                "name": credential.name,
                "secret_hash": credential.secret_hash,
                "created_at": rows.time_col(credential.created_at),
            },
            resource="merchant_credential",
            resource_id=credential.client_id,
        )

    async def get_credential(self, client_id: str) -> merchant.MerchantCredential | None:
        row = await self._db.fetchone(_CREDENTIAL, {"client_id": client_id})
        if row is None:
            return None
        return merchant.MerchantCredential(
            client_id=row["client_id"],
            seller_id=SubjectId(rows.uuid_val(row["seller_id"])),
            name=row["name"],
            secret_hash=row["secret_hash"],
            created_at=rows.time_val(row["created_at"]),
            revoked_at=rows.opt_time_val(row["revoked_at"]),
        )

    async def revoke_credential(self, client_id: str, at: datetime) -> bool:
        params = {"client_id": client_id, "at": rows.time_col(at)}
        if not await self._db.execute(_REVOKE_CREDENTIAL, params):
            return False
        await self._db.execute(_DROP_TOKENS_OF_CLIENT, {"client_id": client_id})
        return True

    async def add_access_token(self, token: merchant.MerchantAccessToken) -> None:
        await self._db.execute(
            _INSERT_TOKEN,
            {
                "token_hash": token.token_hash,
                "client_id": token.client_id,
                "seller_id": token.seller_id.bytes,
                "expires_at": rows.time_col(token.expires_at),
            },
        )

    async def find_access_token(self, token_hash: bytes) -> merchant.MerchantAccessToken | None:
        row = await self._db.fetchone(_TOKEN, {"token_hash": token_hash})
        if row is None:
            return None
        return merchant.MerchantAccessToken(
            token_hash=row["token_hash"],
            client_id=row["client_id"],
            seller_id=SubjectId(rows.uuid_val(row["seller_id"])),
            expires_at=rows.time_val(row["expires_at"]),
        )

    async def find_linked_offers(
        self, products: Collection[tuple[SubjectId, str]]
    ) -> Mapping[tuple[SubjectId, str], Offer]:
        found = {}
        for seller_id, product_id in set(products):  # in process: no round trip to save
            row = await self._db.fetchone(
                _LINKED_OFFER, {"seller_id": seller_id.bytes, "product_id": product_id}
            )
            if row is not None:
                found[(seller_id, product_id)] = rows.entity_of(row, Offer)
        return found

    async def add_reservation(self, reservation: merchant.Reservation) -> None:
        await self._db.execute(
            _INSERT_RESERVATION,
            _reservation_params(reservation),
            resource="reservation",
            resource_id=reservation.id,
        )

    async def save_reservation(self, reservation: merchant.Reservation) -> None:
        params = _reservation_params(reservation)
        for immutable in ("seller_id", "lines", "created_at"):
            del params[immutable]
        await self._db.execute(_SAVE_RESERVATION, params)

    async def get_reservation(
        self, seller_id: SubjectId, reservation_id: str, *, for_update: bool = False
    ) -> merchant.Reservation | None:
        row = await self._db.fetchone(
            _RESERVATION, {"id": reservation_id, "seller_id": seller_id.bytes}
        )
        return None if row is None else _reservation(row)

    async def list_reservations(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[merchant.Reservation]:
        params = {
            **_page_params(seller_id, page),
            "after": str(page.after) if page.after else "",
        }
        found = await self._db.fetchall(_RESERVATIONS_OF_SELLER, params)
        return page_of([_reservation(r) for r in found], page, lambda r: UUID(r.id))

    async def find_ordered(
        self, seller_id: SubjectId, order_ref: str
    ) -> merchant.Reservation | None:
        row = await self._db.fetchone(
            _ORDERED,
            {"seller_id": seller_id.bytes, "ref": order_ref, "g2a_ref": _g2a_ref(order_ref)},
        )
        return None if row is None else _reservation(row)

    async def add_returned_keys(self, returned: Sequence[merchant.ReturnedKey]) -> int:
        added = 0
        for r in returned:
            added += await self._db.execute(
                _INSERT_RETURNED,
                {
                    "key_id": r.key_id.bytes,
                    "seller_id": r.seller_id.bytes,
                    "reservation_id": r.reservation_id,
                    "returned_at": rows.time_col(r.returned_at),
                },
            )
        return added

    async def list_returned_keys(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[merchant.ReturnedKey]:
        found = await self._db.fetchall(_RETURNED_OF_SELLER, _page_params(seller_id, page))
        items = [
            merchant.ReturnedKey(
                key_id=KeyId(rows.uuid_val(r["key_id"])),
                seller_id=SubjectId(rows.uuid_val(r["seller_id"])),
                reservation_id=r["reservation_id"],
                returned_at=rows.time_val(r["returned_at"]),
            )
            for r in found
        ]
        return page_of(items, page, lambda r: r.key_id)

    async def add_notification(self, notification: merchant.MerchantNotification) -> None:
        n = notification
        await self._db.execute(
            _INSERT_NOTIFICATION,
            {
                "id": n.id.bytes,
                "seller_id": n.seller_id.bytes,
                "type": n.type,
                "date": n.date,
                "message": n.message,
                "auction_id": n.auction_id,
                "g2a_offer_id": n.g2a_offer_id,
                "received_at": rows.time_col(n.received_at),
            },
        )

    async def list_notifications(
        self, seller_id: SubjectId, page: PageRequest
    ) -> Page[merchant.MerchantNotification]:
        found = await self._db.fetchall(_NOTIFICATIONS_OF_SELLER, _page_params(seller_id, page))
        items = [
            merchant.MerchantNotification(
                id=rows.uuid_val(r["id"]),
                seller_id=SubjectId(rows.uuid_val(r["seller_id"])),
                type=r["type"],
                date=r["date"],
                message=r["message"],
                auction_id=r["auction_id"],
                g2a_offer_id=r["g2a_offer_id"],
                received_at=rows.time_val(r["received_at"]),
            )
            for r in found
        ]
        return page_of(items, page, lambda n: n.id)

    async def save_link(self, link: merchant.G2AOfferLink) -> None:
        await self._db.execute(
            _SAVE_LINK,
            {
                "offer_id": link.offer_id.bytes,
                "seller_id": link.seller_id.bytes,
                "g2a_offer_id": link.g2a_offer_id,
                "synced_size": link.synced_size,
                "synced_at": rows.opt_time_col(link.synced_at),
                "sync_error": link.sync_error,
            },
            resource="g2a_offer",
            resource_id=link.g2a_offer_id,
        )

    async def get_link(self, offer_id: OfferId) -> merchant.G2AOfferLink | None:
        row = await self._db.fetchone(_LINK, {"offer_id": offer_id.bytes})
        return None if row is None else _link(row)

    async def list_links(self) -> Sequence[merchant.G2AOfferLink]:
        return [_link(row) for row in await self._db.fetchall(_LINKS)]

    async def find_link(
        self, seller_id: SubjectId, g2a_offer_id: str
    ) -> merchant.G2AOfferLink | None:
        row = await self._db.fetchone(
            _LINK_BY_G2A_OFFER, {"seller_id": seller_id.bytes, "g2a_offer_id": g2a_offer_id}
        )
        return None if row is None else _link(row)


def _page_params(seller_id: SubjectId, page: PageRequest) -> dict[str, Any]:
    return {
        "seller_id": seller_id.bytes,
        "after": rows.cursor_after(page.after),
        "limit": limit_of(page),
    }
