"""The PostgreSQL repositories: each port's methods as statements of `sql`, their rows
structured by the converter of `rows`, their driver errors translated by `connection`.

Every unit of work is one READ COMMITTED transaction on one pooled connection. Concurrency
comes from row locks, not from isolation level: `claim` and `lock_expired` take rows with
`FOR UPDATE SKIP LOCKED`, so concurrent buyers and sweepers never wait on each other.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from psycopg import errors as pg_errors
from psycopg.rows import TupleRow

from autokey.adapters.key_spool import Filling
from autokey.adapters.postgres import sql
from autokey.adapters.postgres.connection import (
    MAX_UUID,
    MIN_UUID,
    SqlRepository,
    page_of,
    translated,
)
from autokey.adapters.postgres.rows import id_array, json_rows, params
from autokey.adapters.store_errors import require_saved
from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.errors import DuplicateResource
from autokey.domain.model.idempotency import IdempotencyRecord, StoredResponse
from autokey.domain.model.ids import (
    DeliveryId,
    EndpointId,
    KeyId,
    OfferId,
    OrderId,
    PoolId,
    SubjectId,
    TokenId,
)
from autokey.domain.model.keys import (
    Key,
    KeyPool,
    KeyStatus,
    MasterKeyId,
    PinnedIndexKey,
    PoolCounts,
)
from autokey.domain.model.merchant import G2A_CUSTOMER, Channel
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import UPSTREAM_ORDER, Order, OrderStatus, SalesFilter
from autokey.domain.model.outbound import Delivery, WebhookEndpoint
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.model.webhooks import WebhookEvent
from autokey.ports.store import (
    AuditLog,
    DeliveryRepository,
    EndpointRepository,
    IdempotencyRepository,
    KeyRepository,
    KeyringRepository,
    KeyStage,
    OfferRepository,
    OrderRepository,
    PoolRepository,
    TokenRepository,
    WebhookRepository,
)

# Tokens
# ---------------------------------------------------------------------------------------


class PostgresTokenRepository(SqlRepository, TokenRepository):
    async def add(self, token: ApiToken) -> None:
        # ON CONFLICT DO NOTHING rather than catching the violation: the transaction
        # stays usable after a duplicate, as it does in every other store.
        inserted = await self._run(sql.INSERT_TOKEN, params(token))
        if not inserted:
            raise DuplicateResource(resource="token", id=str(token.id))

    async def find_by_secret_hash(self, secret_hash: bytes) -> ApiToken | None:
        return await self._entity(ApiToken, sql.TOKEN_BY_HASH, (secret_hash,))

    async def revoke(self, token_id: TokenId, at: datetime) -> bool:
        return await self._run(sql.REVOKE_TOKEN, (at, token_id)) == 1

    async def list_all(self) -> Sequence[ApiToken]:
        return await self._entities(ApiToken, sql.TOKENS_ALL, ())

    async def record_use(self, used: Mapping[TokenId, datetime]) -> None:
        if used:
            await self._run(sql.RECORD_TOKEN_USE, (list(used), list(used.values())))


# --- Pools ---------------------------------------------------------------------------------


class PostgresPoolRepository(SqlRepository, PoolRepository):
    async def add(self, pool: KeyPool) -> None:
        inserted = await self._run(sql.INSERT_POOL, params(pool))
        if not inserted:
            raise DuplicateResource(resource="pool", id=str(pool.id))

    async def get(self, pool_id: PoolId) -> KeyPool | None:
        return await self._entity(KeyPool, sql.POOL_BY_ID, (pool_id,))

    async def list_for_seller(self, seller_id: SubjectId, page: PageRequest) -> Page[KeyPool]:
        return await self._owned_page(KeyPool, sql.POOLS_OF_SELLER, seller_id, page, lambda x: x.id)

    async def counts(self, pool_id: PoolId) -> PoolCounts:
        rows = await self._all(sql.POOL_COUNTS, {"pool": pool_id})
        return PoolCounts.from_mapping({KeyStatus(status): n for status, n in rows})

    async def available_counts(self, pool_ids: Collection[PoolId]) -> Mapping[PoolId, int]:
        wanted = list(dict.fromkeys(pool_ids))
        result: dict[PoolId, int] = dict.fromkeys(wanted, 0)
        if wanted:
            for pool_id, n in await self._all(sql.AVAILABLE_COUNTS, {"pools": wanted}):
                result[PoolId(pool_id)] = n
        return result

    async def fold_counts(self) -> int:
        return await self._run(sql.FOLD_COUNTS, ())


# --- Keys ----------------------------------------------------------------------------------


# Bulk uploads (`add_staged`). The fast path COPYs the staged rows straight into `keys`
# (COPY batches heap inserts; INSERT ... SELECT inserts row by row and ran at 0.74x COPY
# here). COPY knows no ON CONFLICT, so a repeated fingerprint fails it; the savepoint then
# rolls back and the same rows are COPYed into a temporary table and merged with
# ON CONFLICT DO NOTHING, earliest position first. Uploads serialise on an advisory lock
# held until commit, so two of them never wait on each other's fingerprints in opposite
# orders (a deadlock).
_UPLOAD_LOCK: Final = 0x6175746F6B6575  # "autokeu"
_COPY_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # no flags, no header extension
_COPY_TRAILER: Final = b"\xff\xff"
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_COPY_BLOCK: Final = 1024 * 1024


class PostgresKeyStage(Filling, KeyStage):
    """Keys as rows of PostgreSQL's binary COPY format in a `Filling` file, streamed to COPY
    as they are written."""

    def __init__(self) -> None:
        super().__init__()
        self._file.write(_COPY_SIGNATURE)
        self._wrote(0)

    def put(self, keys: Sequence[Key]) -> None:
        self._file.write(b"".join(map(_copy_row, keys)))
        self._wrote(len(keys))

    async def blocks(self) -> AsyncIterator[bytes]:
        """The whole COPY stream, trailer included, in blocks of bounded size, each as soon
        as it is written; the trailer once the stage has ended."""
        offset, ended = 0, False
        while not ended:
            written, ended = await self._grown(offset)
            while offset < written:
                block = self._read_at(offset, min(_COPY_BLOCK, written - offset))
                offset += len(block)
                yield block
        yield _COPY_TRAILER


def _copy_row(key: Key) -> bytes:
    """One tuple of the binary COPY format: a field count, then each field's length and bytes
    (uuid: 16 bytes; text and bytea: raw; timestamptz: int64 microseconds since 2000)."""
    status, sealed, fingerprint = key.status.value.encode(), key.sealed, key.fingerprint
    micros = (key.created_at - _PG_EPOCH) // _MICROSECOND
    return struct.pack(
        f">hi16si16si{len(status)}si{len(sealed)}si{len(fingerprint)}siq",
        6,
        16,
        key.id.bytes,
        16,
        key.pool_id.bytes,
        len(status),
        status,
        len(sealed),
        sealed,
        len(fingerprint),
        fingerprint,
        8,
        micros,
    )


def _sorted_ids(rows: list[TupleRow]) -> list[KeyId]:
    return sorted(KeyId(r[0]) for r in rows)


class PostgresKeyRepository(SqlRepository, KeyRepository):
    async def add_staged(self, stage: KeyStage) -> Sequence[int]:
        if not isinstance(stage, PostgresKeyStage):
            raise TypeError(f"a stage of another store: {type(stage).__name__}")
        with translated("key"):
            await self._conn.execute(sql.ADVISORY_XACT_LOCK, (_UPLOAD_LOCK,))
            try:
                async with self._conn.transaction():  # a savepoint
                    await self._copy(sql.COPY_KEYS, stage)
                return []
            except pg_errors.UniqueViolation:
                pass  # a fingerprint stored already, or repeated in the stage: merge instead
            await stage.until_ended()
            await self._conn.execute(sql.CREATE_UPLOAD_STAGE)
            await self._copy(sql.COPY_UPLOAD_STAGE, stage)
            cur = await self._conn.execute(sql.MERGE_UPLOAD_STAGE)
            return [row[0] for row in await cur.fetchall()]

    async def _copy(self, statement: str, stage: PostgresKeyStage) -> None:
        async with self._conn.cursor() as cur, cur.copy(statement) as copy:
            async for block in stage.blocks():
                await copy.write(block)

    async def add_new(self, keys: Sequence[Key]) -> frozenset[KeyId]:
        if not keys:
            return frozenset()
        # Inserting in fingerprint order means two batches that share fingerprints lock
        # them in the same order and wait for each other instead of deadlocking.
        batch = sorted(keys, key=lambda k: k.fingerprint)
        params = (
            [k.id for k in batch],
            [k.pool_id for k in batch],
            [k.status.value for k in batch],
            [k.sealed for k in batch],
            [k.fingerprint for k in batch],
            [k.created_at for k in batch],
        )
        with translated("key", str(batch[0].id), refs={"pool": str(batch[0].pool_id)}):
            cur = await self._conn.execute(sql.INSERT_KEYS, params)
            rows = await cur.fetchall()
        if rows and len(rows) == len(batch):
            # Nothing skipped: the ids are exactly the batch's.
            return frozenset(k.id for k in batch)
        return frozenset(KeyId(r[0]) for r in rows)

    async def get(self, key_id: KeyId, *, for_update: bool = False) -> Key | None:
        return await self._entity(
            Key, sql.locked(sql.KEY_BY_ID) if for_update else sql.KEY_BY_ID, (key_id,)
        )

    async def find_by_fingerprint(self, fingerprint: bytes) -> Key | None:
        return await self._entity(Key, sql.KEY_BY_FINGERPRINT, (fingerprint,))

    async def save(self, key: Key) -> None:
        changed = await self._run(
            sql.SAVE_KEY,
            params(key),
        )
        require_saved(changed, "key", key.id)

    async def list_in_pool(
        self, pool_id: PoolId, status: KeyStatus | None, page: PageRequest
    ) -> Page[Key]:
        after, limit = page.after or MIN_UUID, page.limit + 1
        if status is None:
            rows = await self._entities(
                Key, sql.KEYS_OF_POOL, {"pool": pool_id, "after": after, "limit": limit}
            )
        else:
            rows = await self._entities(
                Key, sql.KEYS_OF_POOL_IN_STATUS, (pool_id, status.value, after, limit)
            )
        return page_of(rows, page.limit, lambda x: x.id)

    async def claim(
        self, pool_id: PoolId, order_id: OrderId, quantity: int, now: datetime
    ) -> Sequence[KeyId]:
        if quantity <= 0:
            return []
        query, limit = (
            (sql.KEY_RESERVE_ONE_FROM_MARK, ())  # a plan PostgreSQL keeps
            if quantity == 1
            else (sql.KEY_RESERVE_FROM_MARK, (quantity,))
        )
        rows = await self._all(query, (order_id, now, pool_id, pool_id, *limit))
        if len(rows) < quantity:
            # Short above the mark: a key may have become AVAILABLE below it while
            # housekeeping raised it; the full range finds it.
            rows += await self._all(sql.KEY_RESERVE, (order_id, now, pool_id, quantity - len(rows)))
        return _sorted_ids(rows)

    async def claim_many(
        self, wants: Sequence[tuple[OrderId, PoolId, int]], now: datetime
    ) -> Mapping[OrderId, Sequence[KeyId]]:
        # From the claim marks only: an order left unserved is tried again alone, and the
        # single claim also walks the range below the mark.
        found = await self._all(
            sql.KEYS_RESERVE_FOR_ORDERS,
            {
                "orders": id_array(order_id for order_id, _, _ in wants),
                "pools": id_array(pool_id for _, pool_id, _ in wants),
                "quantities": "{" + ",".join(str(quantity) for _, _, quantity in wants) + "}",
                "now": now,
            },
        )
        served: dict[OrderId, list[KeyId]] = {}
        for order_id, key_id in sorted(found):
            served.setdefault(OrderId(order_id), []).append(KeyId(key_id))
        return served

    async def advance_claim_marks(self) -> int:
        row = await self._one(sql.ADVANCE_CLAIM_MARKS, ())
        return 0 if row is None else int(row[0])

    async def count_available(self, pool_id: PoolId) -> int:
        row = await self._one(sql.COUNT_AVAILABLE, (pool_id,))
        return 0 if row is None else int(row[0])

    async def for_order(self, order_id: OrderId) -> Sequence[Key]:
        return await self._entities(Key, sql.KEYS_OF_ORDER, (order_id,))

    async def delivered_to(
        self, order_ids: Collection[OrderId]
    ) -> Mapping[OrderId, Sequence[KeyId]]:
        found: dict[OrderId, list[KeyId]] = {}
        for order_id, key_id in await self._all(sql.DELIVERED_TO, (list(order_ids),)):
            found.setdefault(OrderId(order_id), []).append(KeyId(key_id))
        return found

    async def release_order(self, order_id: OrderId) -> Sequence[KeyId]:
        return _sorted_ids(await self._all(sql.KEY_RELEASE_OF_ORDER, (order_id,)))

    async def deliver_order(self, order_id: OrderId, now: datetime) -> Sequence[Key]:
        delivered = await self._entities(Key, sql.KEY_DELIVER_OF_ORDER, (now, order_id))
        return sorted(delivered, key=lambda k: k.id)

    async def deliver_orders(
        self, order_ids: Collection[OrderId], now: datetime
    ) -> Mapping[OrderId, Sequence[Key]]:
        delivered: dict[OrderId, list[Key]] = {}
        found = await self._entities(Key, sql.KEYS_DELIVER_OF_ORDERS, (now, id_array(order_ids)))
        for key in sorted(found, key=lambda k: k.id):
            assert key.order_id is not None  # a delivered key belongs to an order
            delivered.setdefault(key.order_id, []).append(key)
        return delivered


# --- Keyring (ADR 0011) ---------------------------------------------------------------------


class PostgresKeyringRepository(SqlRepository, KeyringRepository):
    async def master_key_ids(self) -> frozenset[MasterKeyId]:
        return frozenset(
            MasterKeyId(bytes(r[0]).hex()) for r in await self._all(sql.MASTER_KEY_IDS, ())
        )

    async def index_key(self) -> PinnedIndexKey | None:
        return await self._entity(PinnedIndexKey, sql.INDEX_KEY, ())

    async def pin_index_key(self, key: PinnedIndexKey) -> PinnedIndexKey:
        # A concurrent pin waits on the primary key, then does nothing; READ COMMITTED lets
        # the next statement see the winner's row.
        await self._run(sql.PIN_INDEX_KEY, params(key))
        pinned = await self.index_key()
        assert pinned is not None
        return pinned

    async def reseal_index_key(self, sealed: bytes) -> None:
        await self._run(sql.RESEAL_INDEX_KEY, (sealed,))

    async def sealed_under(
        self, master_key_ids: Collection[MasterKeyId], after: KeyId | None, limit: int
    ) -> Sequence[Key]:
        ids = [bytes.fromhex(i) for i in master_key_ids]
        return await self._entities(Key, sql.KEYS_SEALED_UNDER, (after or MIN_UUID, ids, limit))

    async def reseal_key(self, key_id: KeyId, sealed: bytes) -> None:
        await self._run(sql.RESEAL_KEY, (sealed, key_id))


# --- Offers --------------------------------------------------------------------------------


class PostgresOfferRepository(SqlRepository, OfferRepository):
    async def add(self, offer: Offer) -> None:
        inserted = await self._run(
            sql.INSERT_OFFER,
            params(offer),
            refs={"pool": str(offer.key_pool_id)},
        )
        if not inserted:
            raise DuplicateResource(resource="offer", id=str(offer.id))
        self._ledger.saw_offers([offer])

    async def save(self, offer: Offer) -> None:
        changed = await self._run(
            sql.SAVE_OFFER,
            params(offer),
            refs={"pool": str(offer.key_pool_id)},
        )
        require_saved(changed, "offer", offer.id)
        self._ledger.saw_offers([offer])

    async def get(self, offer_id: OfferId) -> Offer | None:
        if (copy := self._ledger.offer(offer_id)) is not None:
            # Checked with the next statement that waits, or with COMMIT (ADR 0040).
            await self._send(sql.CHECK_OFFER_COPY, params(copy))
            return copy
        found = await self._entity(Offer, sql.OFFER_BY_ID, (offer_id,))
        if found is not None:
            self._ledger.saw_offers([found])
        return found

    async def get_many(self, offer_ids: Collection[OfferId]) -> Mapping[OfferId, Offer]:
        found = await self._entities(Offer, sql.OFFERS_BY_IDS, (id_array(offer_ids),))
        self._ledger.saw_offers(found)
        return {offer.id: offer for offer in found}

    async def list_for_seller(self, seller_id: SubjectId, page: PageRequest) -> Page[Offer]:
        return await self._owned_page(Offer, sql.OFFERS_OF_SELLER, seller_id, page, lambda x: x.id)

    async def lock_stocked(self, pool_id: PoolId | None, page: PageRequest) -> Page[Offer]:
        rows = await self._entities(
            Offer,
            sql.OFFERS_STOCKED,
            {"pool": pool_id, "after": page.after or MIN_UUID, "limit": page.limit + 1},
        )
        return page_of(rows, page.limit, lambda x: x.id)


# --- Orders --------------------------------------------------------------------------------


class PostgresOrderRepository(SqlRepository, OrderRepository):
    async def add(self, order: Order) -> None:
        # ON CONFLICT without a target covers the id and the upstream id alike, so a
        # duplicate of either leaves the transaction usable.
        inserted = await self._run(
            sql.INSERT_ORDER,
            params(order),
            refs={"offer": str(order.offer_id), "pool": str(order.pool_id)},
        )
        if inserted:
            self._ledger.saw_orders([order])
            return
        upstream_id = order.upstream_order_id
        if upstream_id is not None and await self._one(sql.ORDER_EXISTS, (order.id,)) is None:
            raise DuplicateResource(resource=UPSTREAM_ORDER, id=upstream_id)
        raise DuplicateResource(resource="order", id=str(order.id))

    async def save(self, order: Order) -> None:
        values = params(order)
        if order.upstream_order_id is None:
            changed = await self._run(sql.SAVE_ORDER, values)
        else:
            # An UPDATE has no ON CONFLICT: run it in a savepoint, so an upstream id another
            # order holds raises DuplicateResource and leaves the transaction usable.
            with translated(UPSTREAM_ORDER, order.upstream_order_id):
                async with self._conn.transaction():
                    changed = (await self._conn.execute(sql.SAVE_ORDER, values)).rowcount
        require_saved(changed, "order", order.id)
        self._ledger.saw_orders([order])

    async def add_many(self, orders: Sequence[Order]) -> None:
        await self._send(sql.INSERT_ORDERS, (json_rows(params(o) for o in orders),))
        self._ledger.saw_orders(orders)

    async def save_many(self, orders: Sequence[Order]) -> None:
        # NotFound surfaces with the next statement that waits, or with COMMIT.
        if len(orders) == 1:
            await self._send(sql.SAVE_ONE_ORDER, params(orders[0]))
        else:
            rows = json_rows(params(o) for o in orders)
            await self._send(sql.SAVE_ORDERS, (rows,), batch=len(orders))
        self._ledger.saw_orders(orders)

    async def get(self, order_id: OrderId, *, for_update: bool = False) -> Order | None:
        if for_update and (copy := self._ledger.order(order_id)) is not None:
            # Locked and checked with the next statement that waits, or with COMMIT (ADR 0040).
            await self._send(sql.LOCK_ORDER_COPY, params(copy))
            return copy
        query = sql.locked(sql.ORDER_BY_ID) if for_update else sql.ORDER_BY_ID
        found = await self._entity(Order, query, (order_id,))
        if found is not None:
            self._ledger.saw_orders([found])
        return found

    async def get_many(
        self, order_ids: Collection[OrderId], *, for_update: bool = False
    ) -> Mapping[OrderId, Order]:
        query = sql.locked(sql.ORDERS_BY_IDS) if for_update else sql.ORDERS_BY_IDS
        found = await self._entities(Order, query, (id_array(order_ids),), batch=len(order_ids))
        self._ledger.saw_orders(found)
        return {order.id: order for order in found}

    async def list_for_buyer(
        self, buyer_id: SubjectId, status: OrderStatus | None, page: PageRequest
    ) -> Page[Order]:
        before, limit = page.after or MAX_UUID, page.limit + 1
        rows = await self._entities(
            Order,
            sql.ORDERS_OF_BUYER,
            {
                "buyer": buyer_id,
                "before": before,
                "status": status and status.value,
                "limit": limit,
            },
        )
        return page_of(rows, page.limit, lambda x: x.id)

    async def list_for_seller(
        self, seller_id: SubjectId, which: SalesFilter, page: PageRequest
    ) -> Page[Order]:
        rows = await self._entities(
            Order,
            sql.ORDERS_OF_SELLER,
            {
                "seller": seller_id,
                "before": page.after or MAX_UUID,
                "status": which.status.value if which.status else None,
                "g2a": None if which.channel is None else which.channel is Channel.G2A,
                "g2a_customer": G2A_CUSTOMER,
                "offer": which.offer_id,
                "since": which.since,
                "until": which.until,
                "limit": page.limit + 1,
            },
        )
        return page_of(rows, page.limit, lambda x: x.id)

    async def lock_expired(self, now: datetime, limit: int) -> Sequence[Order]:
        if limit <= 0:
            return []
        return await self._entities(Order, sql.LOCK_EXPIRED_ORDERS, (now, limit))

    async def find_by_upstream_id(
        self, upstream_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        query = sql.locked(sql.ORDER_BY_UPSTREAM_ID) if for_update else sql.ORDER_BY_UPSTREAM_ID
        return await self._entity(Order, query, (upstream_order_id,))

    async def list_fulfilling(self, limit: int) -> Sequence[Order]:
        if limit <= 0:
            return []
        return await self._entities(Order, sql.FULFILLING_ORDERS, (limit,))


# --- Webhooks ------------------------------------------------------------------------------


class PostgresWebhookRepository(SqlRepository, WebhookRepository):
    async def remember_nonce(self, nonce: str, seen_at: datetime) -> bool:
        return bool(await self._run(sql.REMEMBER_NONCE, (nonce, seen_at)))

    async def prune_nonces(self, seen_before: datetime) -> int:
        return await self._run(sql.PRUNE_NONCES, (seen_before,))

    async def add_event(self, event: WebhookEvent) -> bool:
        return bool(await self._run(sql.INSERT_WEBHOOK_EVENT, params(event)))

    async def get_event(self, event_id: str) -> WebhookEvent | None:
        return await self._entity(WebhookEvent, sql.WEBHOOK_EVENT_BY_ID, (event_id,))


# --- Outbound webhooks: endpoints and deliveries -------------------------------------------


class PostgresEndpointRepository(SqlRepository, EndpointRepository):
    async def add(self, endpoint: WebhookEndpoint) -> None:
        await self._run(sql.INSERT_ENDPOINT, params(endpoint))

    async def get(self, endpoint_id: EndpointId) -> WebhookEndpoint | None:
        return await self._entity(WebhookEndpoint, sql.ENDPOINT_BY_ID, (endpoint_id,))

    async def save(self, endpoint: WebhookEndpoint) -> None:
        changed = await self._run(sql.SAVE_ENDPOINT, params(endpoint))
        require_saved(changed, "webhook_endpoint", endpoint.id)

    async def list_for_sellers(
        self, seller_ids: Collection[SubjectId]
    ) -> Sequence[WebhookEndpoint]:
        if len(seller_ids) == 1:
            (seller_id,) = seller_ids
            return await self._entities(WebhookEndpoint, sql.ENDPOINTS_OF_SELLER, (seller_id,))
        return await self._entities(
            WebhookEndpoint, sql.ENDPOINTS_OF_SELLERS, (id_array(seller_ids),)
        )

    async def sealed_under(
        self, master_key_ids: Collection[MasterKeyId]
    ) -> Sequence[WebhookEndpoint]:
        ids = [bytes.fromhex(i) for i in master_key_ids]
        return await self._entities(WebhookEndpoint, sql.ENDPOINTS_SEALED_UNDER, (ids,))

    async def reseal(self, endpoint_id: EndpointId, sealed_secret: bytes) -> None:
        changed = await self._run(sql.RESEAL_ENDPOINT, (sealed_secret, endpoint_id))
        require_saved(changed, "webhook_endpoint", endpoint_id)


class PostgresDeliveryRepository(SqlRepository, DeliveryRepository):
    async def add(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            with translated():
                async with self._conn.cursor() as cur:
                    await cur.executemany(sql.INSERT_DELIVERY, [params(d) for d in deliveries])

    async def get(self, delivery_id: DeliveryId) -> Delivery | None:
        return await self._entity(Delivery, sql.DELIVERY_BY_ID, (delivery_id,))

    async def save(self, delivery: Delivery) -> None:
        changed = await self._run(sql.SAVE_DELIVERY, params(delivery))
        require_saved(changed, "delivery", delivery.id)

    async def lease_due(self, now: datetime, until: datetime, limit: int) -> Sequence[Delivery]:
        if limit <= 0:
            return []
        rows = await self._entities(
            Delivery, sql.LEASE_DUE_DELIVERIES, {"now": now, "until": until, "limit": limit}
        )
        return sorted(rows, key=lambda d: (d.next_attempt_at, d.id))

    async def list_for_endpoint(self, endpoint_id: EndpointId, page: PageRequest) -> Page[Delivery]:
        rows = await self._entities(
            Delivery,
            sql.DELIVERIES_OF_ENDPOINT,
            (endpoint_id, page.after or MAX_UUID, page.limit + 1),
        )
        return page_of(rows, page.limit, lambda d: d.id)


# --- Idempotency records -------------------------------------------------------------------


class PostgresIdempotencyRepository(SqlRepository, IdempotencyRepository):
    async def get(
        self, scope: str, key: str, *, for_update: bool = False
    ) -> IdempotencyRecord | None:
        query = sql.locked(sql.IDEMPOTENCY_BY_KEY) if for_update else sql.IDEMPOTENCY_BY_KEY
        return await self._entity(IdempotencyRecord, query, (scope, key))

    async def insert(self, record: IdempotencyRecord) -> bool:
        return bool(await self._run(sql.INSERT_IDEMPOTENCY, params(record)))

    async def replace(self, record: IdempotencyRecord) -> None:
        await self._run(sql.REPLACE_IDEMPOTENCY, params(record))

    async def complete(self, claim: IdempotencyRecord, response: StoredResponse) -> bool:
        held = (claim.scope, claim.key, claim.locked_until)
        return bool(
            await self._run(sql.COMPLETE_IDEMPOTENCY, (response.status, response.body, *held))
        )

    async def release(self, claim: IdempotencyRecord) -> None:
        await self._run(sql.RELEASE_IDEMPOTENCY, (claim.scope, claim.key, claim.locked_until))

    async def purge_expired(self, now: datetime) -> int:
        # is_live(now) is `now < expires_at`, so a record expiring exactly now is purged.
        return await self._run(sql.PURGE_IDEMPOTENCY, (now,))


# --- Audit log -----------------------------------------------------------------------------


class PostgresAuditLog(SqlRepository, AuditLog):
    async def append(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        with translated("audit_event", str(events[0].id)):
            # Only queued inside a unit of work (ids are fresh UUIDv7s: nothing to wait for);
            # it travels with the next statement that needs an answer, or with COMMIT.
            rows = (
                {
                    "id": e.id,
                    "occurred_at": e.occurred_at,
                    "action": e.action.value,
                    "actor": e.actor,
                    "pool_id": e.pool_id,
                    "order_id": e.order_id,
                    "key_ids": e.key_ids,
                    "details": e.details,
                }
                for e in events
            )
            await self._conn.execute(sql.INSERT_EVENTS, (json_rows(rows),))

    async def list_events(self, pool_id: PoolId | None, page: PageRequest) -> Page[AuditEvent]:
        after, limit = page.after or MIN_UUID, page.limit + 1
        if pool_id is None:
            rows = await self._entities(AuditEvent, sql.EVENTS, (after, limit))
        else:
            rows = await self._entities(AuditEvent, sql.EVENTS_OF_POOL, (pool_id, after, limit))
        return page_of(rows, page.limit, lambda x: x.id)
