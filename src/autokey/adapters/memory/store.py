"""In-memory store: the reference implementation of every store port, for unit tests and demos.

Transactions are serialised by one lock and undone from a journal on failure, so the
semantics (atomicity, isolation) match the SQL adapters the contract suite compares it with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import attrs

from autokey.adapters.key_spool import SpooledKeys, add_staged_in_batches
from autokey.adapters.unit_of_work import Repositories
from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.errors import DuplicateResource
from autokey.domain.model.idempotency import IdempotencyRecord, IdempotencyState, StoredResponse
from autokey.domain.model.ids import KeyId, OfferId, OrderId, PoolId, SubjectId, TokenId
from autokey.domain.model.keys import Key, KeyPool, KeyStatus, PoolCounts
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import Order, OrderStatus
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.model.webhooks import WebhookEvent
from autokey.ports.store import (
    AuditLog,
    IdempotencyRepository,
    KeyRepository,
    KeyStage,
    OfferRepository,
    OrderRepository,
    PoolRepository,
    Store,
    TokenRepository,
    UnitOfWork,
    WebhookRepository,
)

T = TypeVar("T")
_MISSING: Any = object()


@attrs.define
class _Tables:
    tokens: dict[bytes, ApiToken] = attrs.Factory(dict)
    pools: dict[PoolId, KeyPool] = attrs.Factory(dict)
    keys: dict[KeyId, Key] = attrs.Factory(dict)
    fingerprints: dict[bytes, KeyId] = attrs.Factory(dict)
    offers: dict[OfferId, Offer] = attrs.Factory(dict)
    orders: dict[OrderId, Order] = attrs.Factory(dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = attrs.Factory(dict)
    audit: list[AuditEvent] = attrs.Factory(list)
    nonces: dict[str, datetime] = attrs.Factory(dict)
    events: dict[str, WebhookEvent] = attrs.Factory(dict)


class _Journal:
    """Undo log of one transaction: every write records how to revert itself."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        old = table.get(key, _MISSING)
        self._undo.append(lambda: self._restore(table, key, old))
        table[key] = value

    def delete(self, table: dict[Any, Any], key: Any) -> None:
        if key in table:
            old = table.pop(key)
            self._undo.append(lambda: table.__setitem__(key, old))

    def append(self, items: list[Any], values: Sequence[Any]) -> None:
        size = len(items)
        items.extend(values)
        self._undo.append(lambda: items.__delitem__(slice(size, None)))

    @staticmethod
    def _restore(table: dict[Any, Any], key: Any, old: Any) -> None:
        if old is _MISSING:
            table.pop(key, None)
        else:
            table[key] = old

    def rollback(self) -> None:
        while self._undo:
            self._undo.pop()()


def _copy(entity: T) -> T:
    """Entities are mutable: hand out and store copies so callers cannot edit the store."""
    return attrs.evolve(entity)  # type: ignore[misc]


def _page(
    items: Sequence[T], page: PageRequest, key: Callable[[T], UUID], *, desc: bool = False
) -> Page[T]:
    ordered = sorted(items, key=key, reverse=desc)
    if page.after is not None:
        after = page.after
        ordered = [i for i in ordered if (key(i) < after if desc else key(i) > after)]
    chunk = [_copy(i) for i in ordered[: page.limit]]
    more = len(ordered) > page.limit
    return Page(items=chunk, next_after=key(chunk[-1]) if more and chunk else None)


class MemoryTokenRepository(TokenRepository):
    def __init__(self, t: _Tables, j: _Journal) -> None:
        self._t, self._j = t, j

    async def add(self, token: ApiToken) -> None:
        if token.secret_hash in self._t.tokens:
            raise DuplicateResource(resource="token", id=str(token.id))
        self._j.put(self._t.tokens, token.secret_hash, token)

    async def find_by_secret_hash(self, secret_hash: bytes) -> ApiToken | None:
        return self._t.tokens.get(secret_hash)

    async def revoke(self, token_id: TokenId, at: datetime) -> bool:
        for secret_hash, token in self._t.tokens.items():
            if token.id == token_id and token.revoked_at is None:
                self._j.put(self._t.tokens, secret_hash, attrs.evolve(token, revoked_at=at))
                return True
        return False


class MemoryPoolRepository(PoolRepository):
    def __init__(self, t: _Tables, j: _Journal) -> None:
        self._t, self._j = t, j

    async def add(self, pool: KeyPool) -> None:
        if pool.id in self._t.pools:
            raise DuplicateResource(resource="pool", id=str(pool.id))
        self._j.put(self._t.pools, pool.id, pool)

    async def get(self, pool_id: PoolId) -> KeyPool | None:
        return self._t.pools.get(pool_id)

    async def list_for_seller(self, seller_id: SubjectId, page: PageRequest) -> Page[KeyPool]:
        mine = [p for p in self._t.pools.values() if p.seller_id == seller_id]
        return _page(mine, page, lambda p: p.id)

    async def counts(self, pool_id: PoolId) -> PoolCounts:
        tally: dict[KeyStatus, int] = {}
        for key in self._t.keys.values():
            if key.pool_id == pool_id:
                tally[key.status] = tally.get(key.status, 0) + 1
        return PoolCounts.from_mapping(tally)

    async def available_counts(self, pool_ids: Collection[PoolId]) -> Mapping[PoolId, int]:
        wanted = set(pool_ids)
        result = dict.fromkeys(wanted, 0)
        for key in self._t.keys.values():
            if key.pool_id in wanted and key.status is KeyStatus.AVAILABLE:
                result[key.pool_id] += 1
        return result


class MemoryKeyRepository(KeyRepository):
    def __init__(self, t: _Tables, j: _Journal) -> None:
        self._t, self._j = t, j

    async def add_staged(self, stage: KeyStage) -> Sequence[int]:
        return await add_staged_in_batches(stage, self.add_new)

    async def add_new(self, keys: Sequence[Key]) -> frozenset[KeyId]:
        stored = []
        for key in keys:
            if key.fingerprint not in self._t.fingerprints:
                self._j.put(self._t.fingerprints, key.fingerprint, key.id)
                self._j.put(self._t.keys, key.id, _copy(key))
                stored.append(key.id)
        return frozenset(stored)

    async def get(self, key_id: KeyId, *, for_update: bool = False) -> Key | None:
        key = self._t.keys.get(key_id)
        return None if key is None else _copy(key)

    async def save(self, key: Key) -> None:
        current = self._t.keys[key.id]
        self._j.put(
            self._t.keys,
            key.id,
            attrs.evolve(
                current,
                status=key.status,
                order_id=key.order_id,
                reserved_at=key.reserved_at,
                delivered_at=key.delivered_at,
            ),
        )

    async def list_in_pool(
        self, pool_id: PoolId, status: KeyStatus | None, page: PageRequest
    ) -> Page[Key]:
        rows = [
            k
            for k in self._t.keys.values()
            if k.pool_id == pool_id and (status is None or k.status is status)
        ]
        return _page(rows, page, lambda k: k.id)

    def _of_order(self, order_id: OrderId, status: KeyStatus) -> list[Key]:
        rows = [k for k in self._t.keys.values() if k.order_id == order_id and k.status is status]
        return sorted(rows, key=lambda k: k.id)

    async def claim(
        self, pool_id: PoolId, order_id: OrderId, quantity: int, now: datetime
    ) -> Sequence[KeyId]:
        free = sorted(
            (
                k
                for k in self._t.keys.values()
                if k.pool_id == pool_id and k.status is KeyStatus.AVAILABLE
            ),
            key=lambda k: k.id,
        )[:quantity]
        for key in free:
            claimed = _copy(key)
            claimed.reserve(order_id, now)
            self._j.put(self._t.keys, key.id, claimed)
        return [k.id for k in free]

    async def count_available(self, pool_id: PoolId) -> int:
        return sum(
            1
            for k in self._t.keys.values()
            if k.pool_id == pool_id and k.status is KeyStatus.AVAILABLE
        )

    async def for_order(self, order_id: OrderId) -> Sequence[Key]:
        rows = [k for k in self._t.keys.values() if k.order_id == order_id]
        return [_copy(k) for k in sorted(rows, key=lambda k: k.id)]

    async def release_order(self, order_id: OrderId) -> Sequence[KeyId]:
        released = []
        for key in self._of_order(order_id, KeyStatus.RESERVED):
            free = _copy(key)
            free.release()
            self._j.put(self._t.keys, key.id, free)
            released.append(key.id)
        return released

    async def deliver_order(self, order_id: OrderId, now: datetime) -> Sequence[KeyId]:
        delivered = []
        for key in self._of_order(order_id, KeyStatus.RESERVED):
            done = _copy(key)
            done.deliver(now)
            self._j.put(self._t.keys, key.id, done)
            delivered.append(key.id)
        return delivered


class MemoryOfferRepository(OfferRepository):
    def __init__(self, t: _Tables, j: _Journal) -> None:
        self._t, self._j = t, j

    async def add(self, offer: Offer) -> None:
        if offer.id in self._t.offers:
            raise DuplicateResource(resource="offer", id=str(offer.id))
        self._j.put(self._t.offers, offer.id, _copy(offer))

    async def save(self, offer: Offer) -> None:
        self._j.put(self._t.offers, offer.id, _copy(offer))

    async def get(self, offer_id: OfferId) -> Offer | None:
        offer = self._t.offers.get(offer_id)
        return None if offer is None else _copy(offer)

    async def list_for_seller(self, seller_id: SubjectId, page: PageRequest) -> Page[Offer]:
        mine = [o for o in self._t.offers.values() if o.seller_id == seller_id]
        return _page(mine, page, lambda o: o.id)


class MemoryOrderRepository(OrderRepository):
    def __init__(self, t: _Tables, j: _Journal) -> None:
        self._t, self._j = t, j

    async def add(self, order: Order) -> None:
        if order.id in self._t.orders:
            raise DuplicateResource(resource="order", id=str(order.id))
        self._j.put(self._t.orders, order.id, _copy(order))

    async def save(self, order: Order) -> None:
        self._j.put(self._t.orders, order.id, _copy(order))

    async def get(self, order_id: OrderId, *, for_update: bool = False) -> Order | None:
        order = self._t.orders.get(order_id)
        return None if order is None else _copy(order)

    async def list_for_buyer(
        self, buyer_id: SubjectId, status: OrderStatus | None, page: PageRequest
    ) -> Page[Order]:
        mine = [
            o
            for o in self._t.orders.values()
            if o.buyer_id == buyer_id and (status is None or o.status is status)
        ]
        return _page(mine, page, lambda o: o.id, desc=True)

    async def lock_expired(self, now: datetime, limit: int) -> Sequence[Order]:
        expired = sorted(
            (
                o
                for o in self._t.orders.values()
                if o.status is OrderStatus.PENDING and o.reserved_until < now
            ),
            key=lambda o: o.reserved_until,
        )
        return [_copy(o) for o in expired[:limit]]

    async def find_by_upstream_id(
        self, upstream_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        for order in self._t.orders.values():
            if order.upstream_order_id == upstream_order_id:
                return _copy(order)
        return None

    async def list_fulfilling(self, limit: int) -> Sequence[Order]:
        rows = sorted(
            (o for o in self._t.orders.values() if o.status is OrderStatus.FULFILLING),
            key=lambda o: o.updated_at,
        )
        return [_copy(o) for o in rows[:limit]]


class MemoryWebhookRepository(WebhookRepository):
    def __init__(self, t: _Tables, j: _Journal) -> None:
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


class MemoryIdempotencyRepository(IdempotencyRepository):
    def __init__(self, t: _Tables, j: _Journal) -> None:
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

    async def complete(self, scope: str, key: str, response: StoredResponse) -> None:
        record = self._t.idempotency[(scope, key)]
        done = attrs.evolve(record, state=IdempotencyState.COMPLETED, response=response)
        self._j.put(self._t.idempotency, (scope, key), done)

    async def delete(self, scope: str, key: str) -> None:
        self._j.delete(self._t.idempotency, (scope, key))

    async def purge_expired(self, now: datetime) -> int:
        old = [k for k, r in self._t.idempotency.items() if not r.is_live(now)]
        for k in old:
            self._j.delete(self._t.idempotency, k)
        return len(old)


class MemoryAuditLog(AuditLog):
    def __init__(self, t: _Tables, j: _Journal) -> None:
        self._t, self._j = t, j

    async def append(self, events: Sequence[AuditEvent]) -> None:
        self._j.append(self._t.audit, list(events))

    async def list_events(self, pool_id: PoolId | None, page: PageRequest) -> Page[AuditEvent]:
        rows = [e for e in self._t.audit if pool_id is None or e.pool_id == pool_id]
        return _page(rows, page, lambda e: e.id)


class MemoryStore(Store):
    name = "memory"

    def __init__(self) -> None:
        self._tables = _Tables()
        self._lock = asyncio.Lock()

    def stage_keys(self) -> KeyStage:
        return SpooledKeys()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        async with self._lock:
            t, journal = self._tables, _Journal()
            uow = Repositories(
                tokens=MemoryTokenRepository(t, journal),
                pools=MemoryPoolRepository(t, journal),
                keys=MemoryKeyRepository(t, journal),
                offers=MemoryOfferRepository(t, journal),
                orders=MemoryOrderRepository(t, journal),
                idempotency=MemoryIdempotencyRepository(t, journal),
                audit=MemoryAuditLog(t, journal),
                webhooks=MemoryWebhookRepository(t, journal),
            )
            try:
                yield uow
            except BaseException:
                journal.rollback()
                raise

    async def ping(self) -> None:
        return None

    async def schema_version(self) -> int:
        return 0

    async def migrate(self) -> Sequence[int]:
        return ()

    async def close(self) -> None:
        return None
