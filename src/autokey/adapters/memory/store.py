"""In-memory store: the reference implementation of every store port, for unit tests and demos.

Transactions are serialised by one lock and undone from a journal on failure, so the
semantics (atomicity, isolation) match the SQL adapters the contract suite compares it with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime

import attrs

from autokey.adapters.key_spool import SpooledKeys, add_staged_in_batches
from autokey.adapters.memory.merchant import MemoryMerchantRepository
from autokey.adapters.memory.tables import Journal, Tables, copy, page_of, stored
from autokey.adapters.one_by_one import KeysOneByOne, OffersOneByOne, OrdersOneByOne
from autokey.domain.model import ids
from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.errors import DuplicateResource
from autokey.domain.model.idempotency import IdempotencyRecord, IdempotencyState, StoredResponse
from autokey.domain.model.keys import (
    Key,
    KeyPool,
    KeyStatus,
    KeyTransition,
    MasterKeyId,
    PinnedIndexKey,
    PoolCounts,
    sealed_with,
)
from autokey.domain.model.offers import DeliveryType, Offer, OfferStatus
from autokey.domain.model.orders import UPSTREAM_ORDER, Order, OrderStatus, SalesFilter
from autokey.domain.model.outbound import Delivery, DeliveryStatus, WebhookEndpoint
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.model.webhooks import WebhookEvent
from autokey.ports import store as port


class MemoryTokenRepository(port.TokenRepository):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def add(self, token: ApiToken) -> None:
        if token.secret_hash in self._t.tokens:
            raise DuplicateResource(resource="token", id=str(token.id))
        self._j.put(self._t.tokens, token.secret_hash, token)

    async def find_by_secret_hash(self, secret_hash: bytes) -> ApiToken | None:
        return self._t.tokens.get(secret_hash)

    async def revoke(self, token_id: ids.TokenId, at: datetime) -> bool:
        for secret_hash, token in self._t.tokens.items():
            if token.id == token_id and token.revoked_at is None:
                self._j.put(self._t.tokens, secret_hash, attrs.evolve(token, revoked_at=at))
                return True
        return False

    async def list_all(self) -> Sequence[ApiToken]:
        return sorted(self._t.tokens.values(), key=lambda token: token.id)

    async def record_use(self, used: Mapping[ids.TokenId, datetime]) -> None:
        for secret_hash, token in list(self._t.tokens.items()):
            at = used.get(token.id)
            if at is not None and (token.last_used_at is None or at > token.last_used_at):
                self._j.put(self._t.tokens, secret_hash, attrs.evolve(token, last_used_at=at))


class MemoryPoolRepository(port.PoolRepository):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def add(self, pool: KeyPool) -> None:
        if pool.id in self._t.pools:
            raise DuplicateResource(resource="pool", id=str(pool.id))
        self._j.put(self._t.pools, pool.id, pool)

    async def get(self, pool_id: ids.PoolId) -> KeyPool | None:
        return self._t.pools.get(pool_id)

    async def list_for_seller(self, seller_id: ids.SubjectId, page: PageRequest) -> Page[KeyPool]:
        mine = [p for p in self._t.pools.values() if p.seller_id == seller_id]
        return page_of(mine, page, lambda p: p.id)

    async def counts(self, pool_id: ids.PoolId) -> PoolCounts:
        counts = self._t.key_counts
        return PoolCounts.from_mapping({s: counts.get((pool_id, s), 0) for s in KeyStatus})

    async def available_counts(self, pool_ids: Collection[ids.PoolId]) -> Mapping[ids.PoolId, int]:
        return {p: self._t.key_counts.get((p, KeyStatus.AVAILABLE), 0) for p in pool_ids}

    async def fold_counts(self) -> int:
        return 0  # put_key keeps exact totals: nothing to fold


class MemoryKeyRepository(KeysOneByOne):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def add_staged(self, stage: port.KeyStage) -> Sequence[int]:
        return await add_staged_in_batches(stage, self.add_new)

    async def add_new(self, keys: Sequence[Key]) -> frozenset[ids.KeyId]:
        stored = []
        for key in keys:
            if key.fingerprint not in self._t.fingerprints:
                self._j.put(self._t.fingerprints, key.fingerprint, key.id)
                self._j.put_key(self._t, copy(key))
                stored.append(key.id)
        return frozenset(stored)

    async def get(self, key_id: ids.KeyId, *, for_update: bool = False) -> Key | None:
        key = self._t.keys.get(key_id)
        return None if key is None else copy(key)

    async def find_by_fingerprint(self, fingerprint: bytes) -> Key | None:
        key_id = self._t.fingerprints.get(fingerprint)
        return None if key_id is None else copy(self._t.keys[key_id])

    async def save(self, key: Key) -> None:
        current = stored(self._t.keys, key.id, "key")
        self._j.put_key(
            self._t,
            attrs.evolve(
                current,
                status=key.status,
                order_id=key.order_id,
                reserved_at=key.reserved_at,
                delivered_at=key.delivered_at,
            ),
        )

    async def list_in_pool(
        self, pool_id: ids.PoolId, status: KeyStatus | None, page: PageRequest
    ) -> Page[Key]:
        rows = [
            k
            for k in self._t.keys.values()
            if k.pool_id == pool_id and (status is None or k.status is status)
        ]
        return page_of(rows, page, lambda k: k.id)

    def _of_order(self, order_id: ids.OrderId, status: KeyStatus | None = None) -> list[Key]:
        """The order's keys (in `status`), by id."""
        rows = (self._t.keys.get(k) for k in self._t.order_keys.get(order_id, ()))
        return sorted(
            (k for k in rows if k and k.order_id == order_id and status in (None, k.status)),
            key=lambda k: k.id,
        )

    async def claim(
        self, pool_id: ids.PoolId, order_id: ids.OrderId, quantity: int, now: datetime
    ) -> Sequence[ids.KeyId]:
        free = self._j.take_claimable(self._t, pool_id, quantity)
        for key in free:
            claimed = copy(key)
            claimed.reserve(order_id, now)
            self._j.put_key(self._t, claimed)
        return [k.id for k in free]

    async def advance_claim_marks(self) -> int:
        return 0  # claims walk no dead entries here: no mark

    async def count_available(self, pool_id: ids.PoolId) -> int:
        return self._t.key_counts.get((pool_id, KeyStatus.AVAILABLE), 0)

    async def for_order(self, order_id: ids.OrderId) -> Sequence[Key]:
        return [copy(k) for k in self._of_order(order_id)]

    async def delivered_to(
        self, order_ids: Collection[ids.OrderId]
    ) -> Mapping[ids.OrderId, Sequence[ids.KeyId]]:
        delivered = {o: self._of_order(o, KeyStatus.DELIVERED) for o in order_ids}
        return {o: [k.id for k in keys] for o, keys in delivered.items() if keys}

    async def release_order(self, order_id: ids.OrderId) -> Sequence[ids.KeyId]:
        released = []
        for key in self._of_order(order_id, KeyTransition.RELEASE.source):
            free = copy(key)
            free.release()
            self._j.put_key(self._t, free)
            released.append(key.id)
        return released

    async def deliver_order(self, order_id: ids.OrderId, now: datetime) -> Sequence[Key]:
        delivered = []
        for key in self._of_order(order_id, KeyTransition.DELIVER.source):
            done = copy(key)
            done.deliver(now)
            self._j.put_key(self._t, done)
            delivered.append(copy(done))
        return delivered


class MemoryKeyringRepository(port.KeyringRepository):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def master_key_ids(self) -> frozenset[MasterKeyId]:
        sealed = [k.sealed for k in self._t.keys.values()]
        sealed += [k.sealed for k in self._t.index_key.values()]
        sealed += [e.sealed_secret for e in self._t.endpoints.values()]
        return frozenset(sealed_with(s) for s in sealed)

    async def index_key(self) -> PinnedIndexKey | None:
        return self._t.index_key.get(1)

    async def pin_index_key(self, key: PinnedIndexKey) -> PinnedIndexKey:
        if 1 not in self._t.index_key:
            self._j.put(self._t.index_key, 1, key)
        return self._t.index_key[1]

    async def reseal_index_key(self, sealed: bytes) -> None:
        self._j.put(self._t.index_key, 1, attrs.evolve(self._t.index_key[1], sealed=sealed))

    async def sealed_under(
        self, master_key_ids: Collection[MasterKeyId], after: ids.KeyId | None, limit: int
    ) -> Sequence[Key]:
        found = sorted(
            (
                k
                for k in self._t.keys.values()
                if sealed_with(k.sealed) in master_key_ids and (after is None or k.id > after)
            ),
            key=lambda k: k.id,
        )
        return [copy(k) for k in found[:limit]]

    async def reseal_key(self, key_id: ids.KeyId, sealed: bytes) -> None:
        if key_id in self._t.keys:
            self._j.put(self._t.keys, key_id, attrs.evolve(self._t.keys[key_id], sealed=sealed))


class MemoryOfferRepository(OffersOneByOne):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def add(self, offer: Offer) -> None:
        if offer.id in self._t.offers:
            raise DuplicateResource(resource="offer", id=str(offer.id))
        self._j.put(self._t.offers, offer.id, copy(offer))

    async def save(self, offer: Offer) -> None:
        stored(self._t.offers, offer.id, "offer")
        self._j.put(self._t.offers, offer.id, copy(offer))

    async def get(self, offer_id: ids.OfferId) -> Offer | None:
        offer = self._t.offers.get(offer_id)
        return None if offer is None else copy(offer)

    async def list_for_seller(self, seller_id: ids.SubjectId, page: PageRequest) -> Page[Offer]:
        mine = [o for o in self._t.offers.values() if o.seller_id == seller_id]
        return page_of(mine, page, lambda o: o.id)

    async def lock_stocked(self, pool_id: ids.PoolId | None, page: PageRequest) -> Page[Offer]:
        # One transaction at a time holds this store: nothing to skip.
        stocked = [
            o
            for o in self._t.offers.values()
            if o.status is OfferStatus.ACTIVE
            and o.delivery_type is DeliveryType.AUTO_KEY
            and (pool_id is None or o.key_pool_id == pool_id)
        ]
        return page_of(stocked, page, lambda o: o.id)


class MemoryOrderRepository(OrdersOneByOne):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def add(self, order: Order) -> None:
        if order.id in self._t.orders:
            raise DuplicateResource(resource="order", id=str(order.id))
        self._check_upstream_id(order)
        self._j.put(self._t.orders, order.id, copy(order))

    async def save(self, order: Order) -> None:
        stored(self._t.orders, order.id, "order")
        self._check_upstream_id(order)
        self._j.put(self._t.orders, order.id, copy(order))

    def _check_upstream_id(self, order: Order) -> None:
        upstream_id = order.upstream_order_id
        if upstream_id is None:
            return
        for other in self._t.orders.values():
            if other.upstream_order_id == upstream_id and other.id != order.id:
                raise DuplicateResource(resource=UPSTREAM_ORDER, id=upstream_id)

    async def get(self, order_id: ids.OrderId, *, for_update: bool = False) -> Order | None:
        order = self._t.orders.get(order_id)
        return None if order is None else copy(order)

    async def list_for_buyer(
        self, buyer_id: ids.SubjectId, status: OrderStatus | None, page: PageRequest
    ) -> Page[Order]:
        mine = [
            o
            for o in self._t.orders.values()
            if o.buyer_id == buyer_id and (status is None or o.status is status)
        ]
        return page_of(mine, page, lambda o: o.id, desc=True)

    async def list_for_seller(
        self, seller_id: ids.SubjectId, which: SalesFilter, page: PageRequest
    ) -> Page[Order]:
        sold = [o for o in self._t.orders.values() if o.seller_id == seller_id and which.matches(o)]
        return page_of(sold, page, lambda o: o.id, desc=True)

    async def lock_expired(self, now: datetime, limit: int) -> Sequence[Order]:
        expired = sorted(
            (
                o
                for o in self._t.orders.values()
                if o.status is OrderStatus.PENDING and o.reserved_until <= now
            ),
            key=lambda o: o.reserved_until,
        )
        return [copy(o) for o in expired[:limit]]

    async def find_by_upstream_id(
        self, upstream_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        for order in self._t.orders.values():
            if order.upstream_order_id == upstream_order_id:
                return copy(order)
        return None

    async def list_fulfilling(self, limit: int) -> Sequence[Order]:
        rows = sorted(
            (o for o in self._t.orders.values() if o.status is OrderStatus.FULFILLING),
            key=lambda o: o.updated_at,
        )
        return [copy(o) for o in rows[:limit]]


class MemoryWebhookRepository(port.WebhookRepository):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def remember_nonce(self, nonce: str, seen_at: datetime) -> bool:
        if nonce in self._t.nonces:
            return False
        self._j.put(self._t.nonces, nonce, seen_at)
        return True

    async def prune_nonces(self, seen_before: datetime) -> int:
        old = [n for n, seen in self._t.nonces.items() if seen < seen_before]
        for nonce in old:
            self._j.delete(self._t.nonces, nonce)
        return len(old)

    async def add_event(self, event: WebhookEvent) -> bool:
        if event.event_id in self._t.events:
            return False
        self._j.put(self._t.events, event.event_id, event)
        return True

    async def get_event(self, event_id: str) -> WebhookEvent | None:
        return self._t.events.get(event_id)


class MemoryIdempotencyRepository(port.IdempotencyRepository):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def get(
        self, scope: str, key: str, *, for_update: bool = False
    ) -> IdempotencyRecord | None:
        return self._t.idempotency.get((scope, key))

    async def insert(self, record: IdempotencyRecord) -> bool:
        if (record.scope, record.key) in self._t.idempotency:
            return False
        self._j.put(self._t.idempotency, (record.scope, record.key), record)
        return True

    async def replace(self, record: IdempotencyRecord) -> None:
        self._j.put(self._t.idempotency, (record.scope, record.key), record)

    async def complete(self, claim: IdempotencyRecord, response: StoredResponse) -> bool:
        record = self._t.idempotency.get((claim.scope, claim.key))
        if record is None or not record.is_held_by(claim):
            return False
        done = attrs.evolve(record, state=IdempotencyState.COMPLETED, response=response)
        self._j.put(self._t.idempotency, (claim.scope, claim.key), done)
        return True

    async def release(self, claim: IdempotencyRecord) -> None:
        record = self._t.idempotency.get((claim.scope, claim.key))
        if record is not None and record.is_held_by(claim):
            self._j.delete(self._t.idempotency, (claim.scope, claim.key))

    async def purge_expired(self, now: datetime) -> int:
        old = [k for k, r in self._t.idempotency.items() if not r.is_live(now)]
        for k in old:
            self._j.delete(self._t.idempotency, k)
        return len(old)


class MemoryAuditLog(port.AuditLog):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def append(self, events: Sequence[AuditEvent]) -> None:
        self._j.append(self._t.audit, list(events))

    async def list_events(self, pool_id: ids.PoolId | None, page: PageRequest) -> Page[AuditEvent]:
        rows = [e for e in self._t.audit if pool_id is None or e.pool_id == pool_id]
        return page_of(rows, page, lambda e: e.id)


class MemoryEndpointRepository(port.EndpointRepository):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def add(self, endpoint: WebhookEndpoint) -> None:
        self._j.put(self._t.endpoints, endpoint.id, copy(endpoint))

    async def get(self, endpoint_id: ids.EndpointId) -> WebhookEndpoint | None:
        found = self._t.endpoints.get(endpoint_id)
        return None if found is None else copy(found)

    async def save(self, endpoint: WebhookEndpoint) -> None:
        stored(self._t.endpoints, endpoint.id, "webhook_endpoint")
        self._j.put(self._t.endpoints, endpoint.id, copy(endpoint))

    async def list_for_sellers(
        self, seller_ids: Collection[ids.SubjectId]
    ) -> Sequence[WebhookEndpoint]:
        mine = [e for e in self._t.endpoints.values() if e.seller_id in seller_ids]
        return [copy(e) for e in sorted(mine, key=lambda e: e.id)]

    async def sealed_under(
        self, master_key_ids: Collection[MasterKeyId]
    ) -> Sequence[WebhookEndpoint]:
        found = [
            e for e in self._t.endpoints.values() if sealed_with(e.sealed_secret) in master_key_ids
        ]
        return [copy(e) for e in sorted(found, key=lambda e: e.id)]

    async def reseal(self, endpoint_id: ids.EndpointId, sealed_secret: bytes) -> None:
        current = stored(self._t.endpoints, endpoint_id, "webhook_endpoint")
        self._j.put(
            self._t.endpoints, endpoint_id, attrs.evolve(current, sealed_secret=sealed_secret)
        )


class MemoryDeliveryRepository(port.DeliveryRepository):
    def __init__(self, t: Tables, j: Journal) -> None:
        self._t, self._j = t, j

    async def add(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self._j.put(self._t.deliveries, delivery.id, copy(delivery))

    async def get(self, delivery_id: ids.DeliveryId) -> Delivery | None:
        found = self._t.deliveries.get(delivery_id)
        return None if found is None else copy(found)

    async def save(self, delivery: Delivery) -> None:
        stored(self._t.deliveries, delivery.id, "delivery")
        self._j.put(self._t.deliveries, delivery.id, copy(delivery))

    async def lease_due(self, now: datetime, until: datetime, limit: int) -> Sequence[Delivery]:
        due = sorted(
            (
                d
                for d in self._t.deliveries.values()
                if d.status is DeliveryStatus.PENDING
                and d.next_attempt_at <= now
                and (d.leased_until is None or d.leased_until <= now)
            ),
            key=lambda d: (d.next_attempt_at, d.id),
        )[: max(limit, 0)]
        leased = [attrs.evolve(d, leased_until=until) for d in due]
        for delivery in leased:
            await self.save(delivery)
        return [copy(d) for d in leased]

    async def list_for_endpoint(
        self, endpoint_id: ids.EndpointId, page: PageRequest
    ) -> Page[Delivery]:
        mine = [d for d in self._t.deliveries.values() if d.endpoint_id == endpoint_id]
        return page_of(mine, page, lambda d: d.id, desc=True)


class MemoryStore(port.Store):
    name = "memory"

    def __init__(self) -> None:
        self._tables = Tables()
        self._lock = asyncio.Lock()

    def stage_keys(self) -> port.KeyStage:
        return SpooledKeys()

    @asynccontextmanager
    async def transaction(self, *, optimistic: bool = False) -> AsyncIterator[port.UnitOfWork]:
        # Transactions here run one at a time under a lock: nothing to gain from copies.
        async with self._lock:
            t, journal = self._tables, Journal()
            uow = port.UnitOfWork(
                tokens=MemoryTokenRepository(t, journal),
                pools=MemoryPoolRepository(t, journal),
                keys=MemoryKeyRepository(t, journal),
                offers=MemoryOfferRepository(t, journal),
                orders=MemoryOrderRepository(t, journal),
                idempotency=MemoryIdempotencyRepository(t, journal),
                audit=MemoryAuditLog(t, journal),
                webhooks=MemoryWebhookRepository(t, journal),
                endpoints=MemoryEndpointRepository(t, journal),
                deliveries=MemoryDeliveryRepository(t, journal),
                keyring=MemoryKeyringRepository(t, journal),
                merchant=MemoryMerchantRepository(t, journal),
            )
            try:
                yield uow
            except BaseException:
                journal.rollback()
                raise

    def bulk_transaction(self) -> AbstractAsyncContextManager[port.UnitOfWork]:
        return self.transaction()

    async def ping(self) -> None:
        return None

    async def schema_version(self) -> int:
        return 0

    @property
    def shipped_schema_version(self) -> int:
        return 0

    async def migrate(self) -> Sequence[int]:
        return ()

    async def close(self) -> None:
        return None
