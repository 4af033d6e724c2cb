"""Persistence ports. One `Store` hands out units of work; each unit of work is one
ACID transaction over every repository below. Adapters: memory, SQLite, PostgreSQL.

Conventions for every repository:
- "not found" returns None (never raises);
- writes that violate a uniqueness rule raise `DuplicateResource`;
- driver errors never cross the port: an unreachable database raises `StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.idempotency import IdempotencyRecord, StoredResponse
from autokey.domain.model.ids import KeyId, OfferId, OrderId, PoolId, SubjectId, TokenId
from autokey.domain.model.keys import Key, KeyPool, KeyStatus, PoolCounts
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import Order, OrderStatus
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.model.webhooks import WebhookEvent


class TokenRepository(Protocol):
    async def add(self, token: ApiToken) -> None:
        """Store a new token. Raises DuplicateResource if its secret hash exists."""
        ...

    async def find_by_secret_hash(self, secret_hash: bytes) -> ApiToken | None:
        """The token whose secret hashes to `secret_hash`, revoked or not; None if unknown."""
        ...

    async def revoke(self, token_id: TokenId, at: datetime) -> bool:
        """Mark the token revoked at `at`; False if unknown or already revoked (idempotent)."""
        ...


class PoolRepository(Protocol):
    async def add(self, pool: KeyPool) -> None:
        """Store a new pool."""
        ...

    async def get(self, pool_id: PoolId) -> KeyPool | None: ...

    async def list_for_seller(self, seller_id: SubjectId, page: PageRequest) -> Page[KeyPool]:
        """The seller's pools in id (creation) order."""
        ...

    async def counts(self, pool_id: PoolId) -> PoolCounts:
        """Keys per status; all zero for an empty or unknown pool."""
        ...

    async def available_counts(self, pool_ids: Collection[PoolId]) -> Mapping[PoolId, int]:
        """AVAILABLE keys per pool, for every pool asked (0 where none)."""
        ...


class KeyStage(Protocol):
    """The keys of one bulk upload, spooled outside any transaction (memory stays bounded,
    no connection is held), then stored at once by `KeyRepository.add_staged`. A stage is
    used by one task at a time and only with the store that made it."""

    def put(self, keys: Sequence[Key]) -> None:
        """Append keys, in order. Synchronous and CPU-bound (encoding, file writes): call it
        from a worker thread, never on the event loop. Fingerprints may repeat."""
        ...

    def __len__(self) -> int:
        """How many keys were put."""
        ...

    def close(self) -> None:
        """Discard the spool. Idempotent; the stage is unusable afterwards."""
        ...


class KeyRepository(Protocol):
    async def add_staged(self, stage: KeyStage) -> Sequence[int]:
        """Insert every staged key whose fingerprint is stored nowhere yet (in any pool) and
        was not staged at an earlier position; return the 0-based positions, ascending, of
        the keys skipped. All or nothing with the rest of the transaction; fast on large
        stages (one bulk load, not one statement per key)."""
        ...

    async def add_new(self, keys: Sequence[Key]) -> frozenset[KeyId]:
        """Insert every key whose fingerprint is stored nowhere yet (in any pool) and return
        the ids inserted; the others are skipped silently. The fingerprints within `keys`
        must be distinct (the caller de-duplicates a batch)."""
        ...

    async def get(self, key_id: KeyId, *, for_update: bool = False) -> Key | None:
        """One key; `for_update` locks it until the transaction ends."""
        ...

    async def save(self, key: Key) -> None:
        """Persist a key's status, order and timestamps (never its material)."""
        ...

    async def list_in_pool(
        self, pool_id: PoolId, status: KeyStatus | None, page: PageRequest
    ) -> Page[Key]:
        """A pool's keys in id order, optionally of one status."""
        ...

    async def claim(
        self, pool_id: PoolId, order_id: OrderId, quantity: int, now: datetime
    ) -> Sequence[KeyId]:
        """Reserve up to `quantity` AVAILABLE keys of the pool for `order_id`, oldest first,
        skipping keys another open transaction holds. May return fewer than asked: the caller
        decides (with `count_available`) whether the pool is empty or merely busy."""
        ...

    async def count_available(self, pool_id: PoolId) -> int:
        """AVAILABLE keys of the pool as this transaction sees them, locked ones included."""
        ...

    async def for_order(self, order_id: OrderId) -> Sequence[Key]:
        """The keys reserved for or delivered to an order, in id order."""
        ...

    async def release_order(self, order_id: OrderId) -> Sequence[KeyId]:
        """RESERVED -> AVAILABLE for every key of the order; returns the ids released."""
        ...

    async def deliver_order(self, order_id: OrderId, now: datetime) -> Sequence[KeyId]:
        """RESERVED -> DELIVERED for every key of the order; returns the ids delivered."""
        ...


class OfferRepository(Protocol):
    async def add(self, offer: Offer) -> None: ...

    async def save(self, offer: Offer) -> None:
        """Persist every mutable field of an existing offer."""
        ...

    async def get(self, offer_id: OfferId) -> Offer | None: ...

    async def list_for_seller(self, seller_id: SubjectId, page: PageRequest) -> Page[Offer]:
        """The seller's offers in id (creation) order."""
        ...


class OrderRepository(Protocol):
    async def add(self, order: Order) -> None: ...

    async def save(self, order: Order) -> None:
        """Persist status, timestamps and cancel reason of an existing order."""
        ...

    async def get(self, order_id: OrderId, *, for_update: bool = False) -> Order | None:
        """One order; `for_update` locks it until the transaction ends."""
        ...

    async def list_for_buyer(
        self, buyer_id: SubjectId, status: OrderStatus | None, page: PageRequest
    ) -> Page[Order]:
        """The buyer's orders, newest first; `page.after` continues below that id."""
        ...

    async def lock_expired(self, now: datetime, limit: int) -> Sequence[Order]:
        """Up to `limit` PENDING orders whose reservation ended before `now`, locked for this
        transaction; orders another transaction holds are skipped, so sweepers never collide."""
        ...

    async def find_by_upstream_id(
        self, upstream_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        """The order whose marketplace order id is `upstream_order_id` (unique), or None."""
        ...

    async def list_fulfilling(self, limit: int) -> Sequence[Order]:
        """Up to `limit` FULFILLING orders, least recently updated first (for the resumer)."""
        ...


class WebhookRepository(Protocol):
    async def remember_nonce(self, nonce: str, seen_at: datetime) -> bool:
        """Record a nonce; False (and nothing written) if it was seen before. Concurrent
        callers with the same nonce: exactly one gets True."""
        ...

    async def prune_nonces(self, seen_before: datetime) -> int:
        """Forget nonces seen before the cut-off; returns how many."""
        ...

    async def add_event(self, event: WebhookEvent) -> bool:
        """Store an event unless one with its event_id exists; True if stored. Concurrent
        callers with the same event_id: exactly one gets True."""
        ...

    async def get_event(self, event_id: str) -> WebhookEvent | None: ...


class IdempotencyRepository(Protocol):
    async def get(
        self, scope: str, key: str, *, for_update: bool = False
    ) -> IdempotencyRecord | None: ...

    async def insert(self, record: IdempotencyRecord) -> bool:
        """Insert unless a record with the same scope and key exists; True if inserted."""
        ...

    async def replace(self, record: IdempotencyRecord) -> None:
        """Overwrite the record with the same scope and key."""
        ...

    async def complete(self, scope: str, key: str, response: StoredResponse) -> None:
        """Mark the record completed with the response to replay."""
        ...

    async def delete(self, scope: str, key: str) -> None: ...

    async def purge_expired(self, now: datetime) -> int:
        """Delete records whose retention ended; returns how many."""
        ...


class AuditLog(Protocol):
    async def append(self, events: Sequence[AuditEvent]) -> None:
        """Append events; nothing is ever updated or deleted."""
        ...

    async def list_events(self, pool_id: PoolId | None, page: PageRequest) -> Page[AuditEvent]:
        """Events of one pool (or all, for admins) in id order."""
        ...


class UnitOfWork(Protocol):
    """One transaction. Committed when the `transaction()` block exits normally,
    rolled back when it raises."""

    tokens: TokenRepository
    pools: PoolRepository
    keys: KeyRepository
    offers: OfferRepository
    orders: OrderRepository
    idempotency: IdempotencyRepository
    audit: AuditLog
    webhooks: WebhookRepository


class Store(Protocol):
    """A database: hands out transactions and reports its health."""

    name: str
    """`memory`, `sqlite` or `postgres`, for health reports and logs."""

    def stage_keys(self) -> KeyStage:
        """A new, empty stage for this store's `KeyRepository.add_staged`; opens nothing
        that the database holds. Close it when done."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """Begin a transaction. Raises StoreUnavailable if the database cannot be reached."""
        ...

    async def ping(self) -> None:
        """Round-trip to the database; raises StoreUnavailable when it does not answer."""
        ...

    async def schema_version(self) -> int:
        """The highest migration applied (0 for a store without migrations)."""
        ...

    async def migrate(self) -> Sequence[int]:
        """Apply pending numbered migrations in order and record them; returns the versions
        applied now. Idempotent, and safe when several processes run it at once."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
