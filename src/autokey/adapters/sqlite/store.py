"""The embedded default store: one SQLite file through one aiosqlite connection.

Concurrency model. Inside a process, an asyncio.Lock serialises transactions on the one
connection. Across processes, every transaction starts with `BEGIN IMMEDIATE`, which takes
SQLite's single writer lock up front (waiting up to the busy timeout), so two writers never
deadlock on a read-to-write upgrade. Holding the writer lock for the whole transaction is
also why `for_update` and "skip rows another transaction holds" need no extra SQL here: no
other transaction can hold a row of this database while one runs.

Driver errors never leave this module: unique violations become `DuplicateResource`,
foreign-key failures `Conflict`, values the database refuses as data (CHECK, NOT NULL or
type failures, a string it cannot encode, an integer over 64 bits) `UnstorableValue`,
trouble with the file or its lock `StoreUnavailable(store="sqlite")`, and a statement
refused as wrong (no such table, misuse) `StoreFault`; each raised `from` the exception.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar
from uuid import UUID

import aiosqlite
import attrs

from autokey.adapters.key_spool import SpooledKeys, add_staged_in_batches
from autokey.adapters.one_by_one import KeysOneByOne, OffersOneByOne, OrdersOneByOne
from autokey.adapters.sqlite import rows, sql
from autokey.adapters.sqlite.connection import (
    STORE_NAME,
    Session,
    limit_of,
    page_of,
    translated,
)
from autokey.adapters.sqlite.merchant import SqliteMerchantRepository
from autokey.adapters.store_errors import require_saved
from autokey.domain.model import ids
from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.errors import (
    AutokeyError,
    DuplicateResource,
    StoreUnavailable,
)
from autokey.domain.model.idempotency import IdempotencyRecord, StoredResponse
from autokey.domain.model.keys import (
    Key,
    KeyPool,
    KeyStatus,
    MasterKeyId,
    PinnedIndexKey,
    PoolCounts,
    sealed_with,
)
from autokey.domain.model.merchant import G2A_CUSTOMER, Channel
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import UPSTREAM_ORDER, Order, OrderStatus, SalesFilter
from autokey.domain.model.outbound import Delivery, WebhookEndpoint
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.model.webhooks import WebhookEvent
from autokey.ports import store as port

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_S: Final = 10.0
DEFAULT_CACHE_KIB: Final = 32 * 1024
_MIGRATION_FILE = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")


def _sorted_ids(found: list[sqlite3.Row]) -> list[UUID]:
    # RETURNING yields rows in no promised order; blob order is UUID (id) order.
    return [rows.uuid_val(blob) for blob in sorted(row[0] for row in found)]


# --- repositories -------------------------------------------------------------------------


class SqliteTokenRepository(port.TokenRepository):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def add(self, token: ApiToken) -> None:
        await self._db.execute(
            sql.TOKEN_INSERT, rows.params(token), resource="token", resource_id=str(token.id)
        )

    async def find_by_secret_hash(self, secret_hash: bytes) -> ApiToken | None:
        row = await self._db.fetchone(sql.TOKEN_BY_SECRET_HASH, {"secret_hash": secret_hash})
        return None if row is None else rows.entity_of(row, ApiToken)

    async def revoke(self, token_id: ids.TokenId, at: datetime) -> bool:
        changed = await self._db.execute(
            sql.TOKEN_REVOKE, {"at": rows.time_col(at), "id": token_id.bytes}
        )
        return changed == 1

    async def list_all(self) -> Sequence[ApiToken]:
        return rows.entities_of(await self._db.fetchall(sql.TOKENS_ALL, {}), ApiToken)

    async def record_use(self, used: Mapping[ids.TokenId, datetime]) -> None:
        for token_id, at in used.items():
            await self._db.execute(
                sql.TOKEN_RECORD_USE, {"at": rows.time_col(at), "id": token_id.bytes}
            )


class SqlitePoolRepository(port.PoolRepository):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def add(self, pool: KeyPool) -> None:
        await self._db.execute(
            sql.POOL_INSERT, rows.params(pool), resource="pool", resource_id=str(pool.id)
        )

    async def get(self, pool_id: ids.PoolId) -> KeyPool | None:
        row = await self._db.fetchone(sql.POOL_GET, {"id": pool_id.bytes})
        return None if row is None else rows.entity_of(row, KeyPool)

    async def list_for_seller(self, seller_id: ids.SubjectId, page: PageRequest) -> Page[KeyPool]:
        found = await self._db.fetchall(
            sql.POOLS_OF_SELLER,
            {
                "seller_id": seller_id.bytes,
                "after": rows.cursor_after(page.after),
                "limit": limit_of(page),
            },
        )
        return page_of(rows.entities_of(found, KeyPool), page, lambda p: p.id)

    async def counts(self, pool_id: ids.PoolId) -> PoolCounts:
        found = await self._db.fetchall(sql.POOL_COUNTS, {"pool_id": pool_id.bytes})
        return PoolCounts.from_mapping({KeyStatus(r["status"]): r["n"] for r in found})

    async def available_counts(self, pool_ids: Collection[ids.PoolId]) -> Mapping[ids.PoolId, int]:
        # One counter row per pool: callers ask for a page of offers' pools at most.
        result: dict[ids.PoolId, int] = {}
        for pool_id in set(pool_ids):
            row = await self._db.fetchone(sql.AVAILABLE_IN_POOL, {"pool_id": pool_id.bytes})
            result[pool_id] = 0 if row is None else row["n"]
        return result

    async def fold_counts(self) -> int:
        return 0  # the triggers keep exact totals: nothing to fold


class SqliteKeyRepository(KeysOneByOne):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def add_staged(self, stage: port.KeyStage) -> Sequence[int]:
        return await add_staged_in_batches(stage, self.add_new)

    async def add_new(self, keys: Sequence[Key]) -> frozenset[ids.KeyId]:
        if not keys:
            return frozenset()
        inserted = await self._db.executemany(
            sql.KEY_INSERT,
            rows.key_insert_rows(keys),
            resource="key",
            resource_id=str(keys[0].id) if len(keys) == 1 else "",
        )
        if inserted == len(keys):  # the usual case: no fingerprint was stored already
            return frozenset(k.id for k in keys)
        # Some were skipped. This transaction holds the only writer lock and an id clash would
        # have raised, so the keys inserted now are exactly those whose id is now stored.
        await self._db.executemany(sql.STAGE_KEY_ID, [(k.id.bytes,) for k in keys])
        landed = await self._db.fetchall(sql.STAGED_KEY_IDS_STORED)
        await self._db.execute(sql.CLEAR_STAGED_KEY_IDS)
        return frozenset(ids.KeyId(rows.uuid_val(r[0])) for r in landed)

    async def get(self, key_id: ids.KeyId, *, for_update: bool = False) -> Key | None:
        # for_update: the transaction already holds the database's only writer lock.
        row = await self._db.fetchone(sql.KEY_GET, {"id": key_id.bytes})
        return None if row is None else rows.entity_of(row, Key)

    async def find_by_fingerprint(self, fingerprint: bytes) -> Key | None:
        row = await self._db.fetchone(sql.KEY_BY_FINGERPRINT, {"fingerprint": fingerprint})
        return None if row is None else rows.entity_of(row, Key)

    async def save(self, key: Key) -> None:
        changed = await self._db.execute(
            sql.KEY_SAVE, rows.params(key), resource="key", resource_id=str(key.id)
        )
        require_saved(changed, "key", key.id)

    async def list_in_pool(
        self, pool_id: ids.PoolId, status: KeyStatus | None, page: PageRequest
    ) -> Page[Key]:
        params: dict[str, Any] = {
            "pool_id": pool_id.bytes,
            "after": rows.cursor_after(page.after),
            "limit": limit_of(page),
        }
        if status is None:
            found = await self._db.fetchall(sql.KEYS_IN_POOL, params)
        else:
            found = await self._db.fetchall(
                sql.KEYS_IN_POOL_WITH_STATUS, {**params, "status": status.value}
            )
        return page_of(rows.entities_of(found, Key), page, lambda k: k.id)

    async def claim(
        self, pool_id: ids.PoolId, order_id: ids.OrderId, quantity: int, now: datetime
    ) -> Sequence[ids.KeyId]:
        if quantity <= 0:  # LIMIT of a negative number means "no limit" in SQLite
            return []
        found = await self._db.fetchall(
            sql.KEY_RESERVE,
            {
                "pool_id": pool_id.bytes,
                "order_id": order_id.bytes,
                "now": rows.time_col(now),
                "quantity": quantity,
            },
        )
        return [ids.KeyId(i) for i in _sorted_ids(found)]

    async def advance_claim_marks(self) -> int:
        return 0  # claims walk no dead entries here: no mark

    async def count_available(self, pool_id: ids.PoolId) -> int:
        row = await self._db.fetchone(sql.AVAILABLE_IN_POOL, {"pool_id": pool_id.bytes})
        return 0 if row is None else int(row["n"])

    async def for_order(self, order_id: ids.OrderId) -> Sequence[Key]:
        found = await self._db.fetchall(sql.KEYS_OF_ORDER, {"order_id": order_id.bytes})
        return rows.entities_of(found, Key)

    async def delivered_to(
        self, order_ids: Collection[ids.OrderId]
    ) -> Mapping[ids.OrderId, Sequence[ids.KeyId]]:
        found: dict[ids.OrderId, Sequence[ids.KeyId]] = {}
        for order_id in set(order_ids):
            keys = await self._db.fetchall(
                sql.KEYS_DELIVERED_TO_ORDER, {"order_id": order_id.bytes}
            )
            if keys:
                found[order_id] = [ids.KeyId(rows.uuid_val(r["id"])) for r in keys]
        return found

    async def release_order(self, order_id: ids.OrderId) -> Sequence[ids.KeyId]:
        found = await self._db.fetchall(sql.KEY_RELEASE, {"order_id": order_id.bytes})
        return [ids.KeyId(i) for i in _sorted_ids(found)]

    async def deliver_order(self, order_id: ids.OrderId, now: datetime) -> Sequence[Key]:
        found = await self._db.fetchall(
            sql.KEY_DELIVER, {"order_id": order_id.bytes, "now": rows.time_col(now)}
        )
        return sorted(rows.entities_of(found, Key), key=lambda k: k.id)


class SqliteKeyringRepository(port.KeyringRepository):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def master_key_ids(self) -> frozenset[MasterKeyId]:
        found = await self._db.fetchall(sql.MASTER_KEY_IDS)
        return frozenset(MasterKeyId(bytes(r[0]).hex()) for r in found)

    async def index_key(self) -> PinnedIndexKey | None:
        row = await self._db.fetchone(sql.INDEX_KEY_GET)
        return None if row is None else PinnedIndexKey(id=row[0], sealed=bytes(row[1]))

    async def pin_index_key(self, key: PinnedIndexKey) -> PinnedIndexKey:
        await self._db.execute(sql.INDEX_KEY_PIN, {"key_id": key.id, "sealed": key.sealed})
        pinned = await self.index_key()
        assert pinned is not None  # inserted now or before, in this transaction's view
        return pinned

    async def reseal_index_key(self, sealed: bytes) -> None:
        await self._db.execute(sql.INDEX_KEY_RESEAL, {"sealed": sealed})

    async def sealed_under(
        self, master_key_ids: Collection[MasterKeyId], after: ids.KeyId | None, limit: int
    ) -> Sequence[Key]:
        # Locking: this transaction holds the database's only writer lock.
        params = {
            "after": rows.cursor_after(after),
            "ids": json.dumps(sorted(master_key_ids)),
            "limit": limit,
        }
        return rows.entities_of(await self._db.fetchall(sql.KEYS_SEALED_UNDER, params), Key)

    async def reseal_key(self, key_id: ids.KeyId, sealed: bytes) -> None:
        await self._db.execute(sql.KEY_RESEAL, {"id": key_id.bytes, "sealed": sealed})


class SqliteOfferRepository(OffersOneByOne):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def add(self, offer: Offer) -> None:
        await self._db.execute(
            sql.OFFER_INSERT, rows.params(offer), resource="offer", resource_id=str(offer.id)
        )

    async def save(self, offer: Offer) -> None:
        params = rows.params(offer)
        del params["seller_id"], params["created_at"]
        changed = await self._db.execute(
            sql.OFFER_SAVE, params, resource="offer", resource_id=str(offer.id)
        )
        require_saved(changed, "offer", offer.id)

    async def get(self, offer_id: ids.OfferId) -> Offer | None:
        row = await self._db.fetchone(sql.OFFER_GET, {"id": offer_id.bytes})
        return None if row is None else rows.entity_of(row, Offer)

    async def list_for_seller(self, seller_id: ids.SubjectId, page: PageRequest) -> Page[Offer]:
        found = await self._db.fetchall(
            sql.OFFERS_OF_SELLER,
            {
                "seller_id": seller_id.bytes,
                "after": rows.cursor_after(page.after),
                "limit": limit_of(page),
            },
        )
        return page_of(rows.entities_of(found, Offer), page, lambda o: o.id)

    async def lock_stocked(self, pool_id: ids.PoolId | None, page: PageRequest) -> Page[Offer]:
        found = await self._db.fetchall(
            sql.OFFERS_STOCKED,
            {
                "pool_id": None if pool_id is None else pool_id.bytes,
                "after": rows.cursor_after(page.after),
                "limit": limit_of(page),
            },
        )
        return page_of(rows.entities_of(found, Offer), page, lambda o: o.id)


class SqliteOrderRepository(OrdersOneByOne):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def add(self, order: Order) -> None:
        await self._check_upstream_id(order)
        await self._db.execute(
            sql.ORDER_INSERT, rows.params(order), resource="order", resource_id=str(order.id)
        )

    async def save(self, order: Order) -> None:
        await self._check_upstream_id(order)
        params = rows.params(order)
        for immutable in ("buyer_id", "seller_id", "offer_id", "pool_id", "quantity"):
            del params[immutable]
        for immutable in ("unit_price_amount", "unit_price_currency", "created_at"):
            del params[immutable]
        changed = await self._db.execute(
            sql.ORDER_SAVE, params, resource="order", resource_id=str(order.id)
        )
        require_saved(changed, "order", order.id)

    async def _check_upstream_id(self, order: Order) -> None:
        """Name the upstream order id as the duplicate, as the other stores do. Checking first
        is race-free here: this transaction holds the database's only writer lock."""
        upstream_id = order.upstream_order_id
        if upstream_id is None:
            return
        holder = await self._db.fetchone(
            sql.ORDER_ID_BY_UPSTREAM_ID, {"upstream_order_id": upstream_id}
        )
        if holder is not None and rows.uuid_val(holder["id"]) != order.id:
            raise DuplicateResource(resource=UPSTREAM_ORDER, id=upstream_id)

    async def get(self, order_id: ids.OrderId, *, for_update: bool = False) -> Order | None:
        # for_update: the transaction already holds the database's only writer lock.
        row = await self._db.fetchone(sql.ORDER_GET, {"id": order_id.bytes})
        return None if row is None else rows.entity_of(row, Order)

    async def list_for_buyer(
        self, buyer_id: ids.SubjectId, status: OrderStatus | None, page: PageRequest
    ) -> Page[Order]:
        params: dict[str, Any] = {
            "buyer_id": buyer_id.bytes,
            "after": rows.cursor_after(page.after, descending=True),
            "limit": limit_of(page),
            "status": None if status is None else status.value,
        }
        found = await self._db.fetchall(sql.ORDERS_OF_BUYER, params)
        return page_of(rows.entities_of(found, Order), page, lambda o: o.id)

    async def list_for_seller(
        self, seller_id: ids.SubjectId, which: SalesFilter, page: PageRequest
    ) -> Page[Order]:
        found = await self._db.fetchall(
            sql.ORDERS_OF_SELLER,
            {
                "seller_id": seller_id.bytes,
                "after": rows.cursor_after(page.after, descending=True),
                "status": which.status.value if which.status else None,
                "g2a": None if which.channel is None else which.channel is Channel.G2A,
                "g2a_customer": G2A_CUSTOMER.bytes,
                "offer_id": which.offer_id.bytes if which.offer_id else None,
                "since": rows.opt_time_col(which.since),
                "until": rows.opt_time_col(which.until),
                "limit": limit_of(page),
            },
        )
        return page_of(rows.entities_of(found, Order), page, lambda o: o.id)

    async def lock_expired(self, now: datetime, limit: int) -> Sequence[Order]:
        # Rows are "locked" by the writer lock this transaction holds: no sweeper collides.
        if limit <= 0:
            return []
        found = await self._db.fetchall(
            sql.ORDERS_EXPIRED, {"now": rows.time_col(now), "limit": limit}
        )
        return rows.entities_of(found, Order)

    async def find_by_upstream_id(
        self, upstream_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        row = await self._db.fetchone(
            sql.ORDER_BY_UPSTREAM_ID, {"upstream_order_id": upstream_order_id}
        )
        return None if row is None else rows.entity_of(row, Order)

    async def list_fulfilling(self, limit: int) -> Sequence[Order]:
        found = await self._db.fetchall(sql.ORDERS_FULFILLING, {"limit": max(limit, 0)})
        return rows.entities_of(found, Order)


class SqliteWebhookRepository(port.WebhookRepository):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def remember_nonce(self, nonce: str, seen_at: datetime) -> bool:
        changed = await self._db.execute(
            sql.NONCE_REMEMBER, {"nonce": nonce, "seen_at": rows.time_col(seen_at)}
        )
        return changed == 1

    async def prune_nonces(self, seen_before: datetime) -> int:
        return await self._db.execute(sql.NONCES_PRUNE, {"before": rows.time_col(seen_before)})

    async def add_event(self, event: WebhookEvent) -> bool:
        return await self._db.execute(sql.EVENT_ADD, rows.params(event)) == 1

    async def get_event(self, event_id: str) -> WebhookEvent | None:
        row = await self._db.fetchone(sql.EVENT_GET, {"event_id": event_id})
        return None if row is None else rows.entity_of(row, WebhookEvent)


class SqliteIdempotencyRepository(port.IdempotencyRepository):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def get(
        self, scope: str, key: str, *, for_update: bool = False
    ) -> IdempotencyRecord | None:
        row = await self._db.fetchone(sql.IDEMPOTENCY_GET, {"scope": scope, "key": key})
        return None if row is None else rows.entity_of(row, IdempotencyRecord)

    async def insert(self, record: IdempotencyRecord) -> bool:
        changed = await self._db.execute(
            sql.IDEMPOTENCY_INSERT,
            rows.params(record),
            resource="idempotency_record",
            resource_id=record.key,
        )
        return changed == 1

    async def replace(self, record: IdempotencyRecord) -> None:
        await self._db.execute(
            sql.IDEMPOTENCY_REPLACE,
            rows.params(record),
            resource="idempotency_record",
            resource_id=record.key,
        )

    async def complete(self, claim: IdempotencyRecord, response: StoredResponse) -> bool:
        params = rows.params(attrs.evolve(claim, response=response))
        return await self._db.execute(sql.IDEMPOTENCY_COMPLETE, params) == 1

    async def release(self, claim: IdempotencyRecord) -> None:
        await self._db.execute(sql.IDEMPOTENCY_RELEASE, rows.params(claim))

    async def purge_expired(self, now: datetime) -> int:
        return await self._db.execute(sql.IDEMPOTENCY_PURGE, {"now": rows.time_col(now)})


class SqliteAuditLog(port.AuditLog):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def append(self, events: Sequence[AuditEvent]) -> None:
        if events:
            await self._db.executemany(
                sql.AUDIT_INSERT, [rows.params(e) for e in events], resource="audit_event"
            )

    async def list_events(self, pool_id: ids.PoolId | None, page: PageRequest) -> Page[AuditEvent]:
        params: dict[str, Any] = {"after": rows.cursor_after(page.after), "limit": limit_of(page)}
        if pool_id is None:
            found = await self._db.fetchall(sql.AUDIT_ALL, params)
        else:
            found = await self._db.fetchall(sql.AUDIT_OF_POOL, {**params, "pool_id": pool_id.bytes})
        return page_of(rows.entities_of(found, AuditEvent), page, lambda e: e.id)


class SqliteEndpointRepository(port.EndpointRepository):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def add(self, endpoint: WebhookEndpoint) -> None:
        await self._db.execute(sql.ENDPOINT_INSERT, rows.params(endpoint))

    async def get(self, endpoint_id: ids.EndpointId) -> WebhookEndpoint | None:
        row = await self._db.fetchone(sql.ENDPOINT_GET, {"id": endpoint_id.bytes})
        return None if row is None else rows.entity_of(row, WebhookEndpoint)

    async def save(self, endpoint: WebhookEndpoint) -> None:
        changed = await self._db.execute(sql.ENDPOINT_SAVE, rows.params(endpoint))
        require_saved(changed, "webhook_endpoint", endpoint.id)

    async def list_for_sellers(
        self, seller_ids: Collection[ids.SubjectId]
    ) -> Sequence[WebhookEndpoint]:
        found = [
            endpoint
            for seller_id in set(seller_ids)  # in process: a statement per seller costs no trip
            for endpoint in rows.entities_of(
                await self._db.fetchall(sql.ENDPOINTS_OF_SELLER, {"seller_id": seller_id.bytes}),
                WebhookEndpoint,
            )
        ]
        return sorted(found, key=lambda e: e.id)

    async def sealed_under(
        self, master_key_ids: Collection[MasterKeyId]
    ) -> Sequence[WebhookEndpoint]:
        found = rows.entities_of(await self._db.fetchall(sql.ENDPOINTS_ALL), WebhookEndpoint)
        return [e for e in found if sealed_with(e.sealed_secret) in master_key_ids]

    async def reseal(self, endpoint_id: ids.EndpointId, sealed_secret: bytes) -> None:
        changed = await self._db.execute(
            sql.ENDPOINT_RESEAL, {"sealed": sealed_secret, "id": endpoint_id.bytes}
        )
        require_saved(changed, "webhook_endpoint", endpoint_id)


class SqliteDeliveryRepository(port.DeliveryRepository):
    def __init__(self, session: Session) -> None:
        self._db = session

    async def add(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            await self._db.execute(sql.DELIVERY_INSERT, rows.params(delivery))

    async def get(self, delivery_id: ids.DeliveryId) -> Delivery | None:
        row = await self._db.fetchone(sql.DELIVERY_GET, {"id": delivery_id.bytes})
        return None if row is None else rows.entity_of(row, Delivery)

    async def save(self, delivery: Delivery) -> None:
        changed = await self._db.execute(sql.DELIVERY_SAVE, rows.params(delivery))
        require_saved(changed, "delivery", delivery.id)

    async def lease_due(self, now: datetime, until: datetime, limit: int) -> Sequence[Delivery]:
        if limit <= 0:
            return []
        found = await self._db.fetchall(
            sql.DELIVERIES_DUE, {"now": rows.time_col(now), "limit": limit}
        )
        leased = [attrs.evolve(d, leased_until=until) for d in rows.entities_of(found, Delivery)]
        for delivery in leased:
            await self.save(delivery)
        return leased

    async def list_for_endpoint(
        self, endpoint_id: ids.EndpointId, page: PageRequest
    ) -> Page[Delivery]:
        found = await self._db.fetchall(
            sql.DELIVERIES_OF_ENDPOINT,
            {
                "endpoint_id": endpoint_id.bytes,
                "after": rows.cursor_after(page.after, descending=True),
                "limit": limit_of(page),
            },
        )
        return page_of(rows.entities_of(found, Delivery), page, lambda d: d.id)


def _unit_of_work(session: Session) -> port.UnitOfWork:
    # Imported here: the merchant repository builds on this module's helpers.
    return port.UnitOfWork(
        tokens=SqliteTokenRepository(session),
        pools=SqlitePoolRepository(session),
        keys=SqliteKeyRepository(session),
        offers=SqliteOfferRepository(session),
        orders=SqliteOrderRepository(session),
        idempotency=SqliteIdempotencyRepository(session),
        audit=SqliteAuditLog(session),
        webhooks=SqliteWebhookRepository(session),
        endpoints=SqliteEndpointRepository(session),
        deliveries=SqliteDeliveryRepository(session),
        keyring=SqliteKeyringRepository(session),
        merchant=SqliteMerchantRepository(session),
    )


# --- migrations ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(script: str) -> tuple[str, ...]:
    """Split a script at the semicolons that end statements (not those inside strings,
    comments or trigger bodies), as `sqlite3.complete_statement` judges them.

    `executescript` cannot be used: it commits any open transaction first, and a migration
    must run inside the same transaction as its schema_migrations row."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip(" \t\r\n;"):
        # Whatever follows the last complete statement must be only comments.
        rest = "\n".join(line for line in pending.splitlines() if not line.strip().startswith("--"))
        if rest.strip(" \t\r\n;"):
            raise ValueError(f"incomplete SQL statement at the end of the script: {rest!r}")
    return tuple(statements)


def load_migrations() -> tuple[Migration, ...]:
    """The numbered `NNNN_name.sql` files shipped in this package, in version order."""
    folder = resources.files("autokey.adapters.sqlite").joinpath("migrations")
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match is None:
            continue
        version = int(match["version"])
        if version in found:
            raise ValueError(f"two migrations share version {version}")
        found[version] = Migration(
            version=version,
            name=match["name"],
            statements=split_statements(entry.read_text(encoding="utf-8")),
        )
    return tuple(found[v] for v in sorted(found))


# --- the store ----------------------------------------------------------------------------


class SqliteStore(port.Store):
    """`open()` a file (created if absent), `migrate()`, then `transaction()` per unit of work.

    Transactions of one store are serialised (one connection); do not open a transaction
    inside another on the same store, it would wait for itself."""

    name = STORE_NAME

    def __init__(self, connection: aiosqlite.Connection) -> None:
        """Wrap an open aiosqlite connection made with `isolation_level=None` (this class
        issues BEGIN/COMMIT itself) and `row_factory = sqlite3.Row`. Prefer `open()`."""
        self._conn: aiosqlite.Connection | None = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        cache_kib: int = DEFAULT_CACHE_KIB,
    ) -> SqliteStore:
        """Open (creating if needed) the database at `path` in WAL mode.

        `busy_timeout_s` is how long a transaction waits for another process's writer lock
        before giving up with StoreUnavailable; `cache_kib` sizes the page cache (a bulk
        upload whose indexes fit in it runs about half again as fast). Raises
        StoreUnavailable when the file cannot be opened or is not a database."""
        conn = aiosqlite.connect(path, timeout=busy_timeout_s, isolation_level=None)
        try:
            with translated():
                await conn
                conn.row_factory = sqlite3.Row
                # Switching to WAL needs a moment alone with the file; under a concurrent
                # opener it can report "locked" without consulting the busy handler.
                await _retry_while_locked(conn, sql.PRAGMA_JOURNAL_WAL, busy_timeout_s)
                for pragma in (*sql.CONNECTION_PRAGMAS, f"PRAGMA cache_size = -{cache_kib:d}"):
                    await conn.execute(pragma)
                await conn.execute(sql.CREATE_STAGED_KEY_IDS)
                await conn.execute_fetchall(sql.PING)  # fails now if it is not a database
        except BaseException:
            await _close_quietly(conn)
            raise
        return cls(conn)

    def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreUnavailable(store=STORE_NAME)
        return self._conn

    def stage_keys(self) -> port.KeyStage:
        return SpooledKeys()

    @asynccontextmanager
    async def transaction(self, *, optimistic: bool = False) -> AsyncIterator[port.UnitOfWork]:
        # Transactions here run one at a time under a lock: nothing to gain from copies.
        async with self._lock:
            conn = self._connection()
            await self._begin(conn)
            session = Session(conn)
            try:
                yield _unit_of_work(session)
            except BaseException:
                session.end()
                # Shielded: a second cancellation must not leave the transaction open. The
                # connection runs calls in order, so the next BEGIN queues after this.
                await asyncio.shield(self._rollback(conn))
                raise
            session.end()
            try:
                with translated():
                    await conn.execute(sql.COMMIT)
            except AutokeyError:
                await asyncio.shield(self._rollback(conn))
                raise

    @staticmethod
    async def _begin(conn: aiosqlite.Connection) -> None:
        with translated():
            if conn.in_transaction:  # left open by an interrupted rollback
                await conn.execute(sql.ROLLBACK)
            await conn.execute(sql.BEGIN_IMMEDIATE)

    @staticmethod
    async def _rollback(conn: aiosqlite.Connection) -> None:
        # SQLite may already have rolled back (e.g. after SQLITE_FULL); the original error is
        # what the caller needs to see, so a failing rollback is not reported over it.
        try:
            if conn.in_transaction:
                await conn.execute(sql.ROLLBACK)
        except (sqlite3.Error, ValueError):
            pass

    def bulk_transaction(self) -> AbstractAsyncContextManager[port.UnitOfWork]:
        return self.transaction()

    async def ping(self) -> None:
        conn = self._connection()
        with translated():
            await conn.execute_fetchall(sql.PING)

    @property
    def shipped_schema_version(self) -> int:
        return max(m.version for m in load_migrations())

    async def schema_version(self) -> int:
        conn = self._connection()
        with translated():
            if not list(await conn.execute_fetchall(sql.SCHEMA_MIGRATIONS_EXISTS)):
                return 0
            found = list(await conn.execute_fetchall(sql.SCHEMA_VERSION))
        return int(found[0]["version"])

    async def migrate(self) -> Sequence[int]:
        """Each pending migration runs in its own BEGIN IMMEDIATE transaction with its
        schema_migrations row, re-checked under the writer lock: of several processes
        migrating at once, exactly one applies each version and the others skip it."""
        applied: list[int] = []
        async with self._lock:
            conn = self._connection()
            for migration in load_migrations():
                await self._begin(conn)
                try:
                    with translated(resource="migration", resource_id=str(migration.version)):
                        await conn.execute(sql.CREATE_SCHEMA_MIGRATIONS)
                        done = await conn.execute_fetchall(
                            sql.MIGRATION_APPLIED, {"version": migration.version}
                        )
                        if not list(done):
                            for statement in migration.statements:
                                await conn.execute(statement)
                            await conn.execute(
                                sql.RECORD_MIGRATION,
                                {
                                    "version": migration.version,
                                    "name": migration.name,
                                    "applied_at": rows.time_col(datetime.now(UTC)),
                                },
                            )
                            applied.append(migration.version)
                        await conn.execute(sql.COMMIT)
                except BaseException:
                    await asyncio.shield(self._rollback(conn))
                    raise
        return applied

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with translated():
                    await conn.close()


async def _retry_while_locked(conn: aiosqlite.Connection, statement: str, within_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    delay = 0.005
    while True:
        try:
            await conn.execute_fetchall(statement)
            return
        except sqlite3.OperationalError as exc:
            locked = exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not locked or asyncio.get_running_loop().time() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


async def _close_quietly(conn: aiosqlite.Connection) -> None:
    """Close after a failed open. aiosqlite then queues its own stop with a future nobody
    awaits; wait for its worker thread to finish, or it reports into a closed event loop
    (and, unjoined, keeps the interpreter from exiting)."""
    with suppress(sqlite3.Error, ValueError):
        await conn.close()
    worker = getattr(conn, "_thread", None)  # aiosqlite exposes no public join
    if worker is not None and worker.is_alive():
        await asyncio.to_thread(worker.join, 5.0)
