"""Persistence ports. One `Store` hands out units of work; each unit of work is one
ACID transaction over every repository below. Adapters: memory, SQLite, PostgreSQL.

Conventions for every repository:
- "not found" returns None (never raises);
- writes that violate a uniqueness rule raise `DuplicateResource`;
- `save` overwrites an entity that is stored; saving one that is not stored raises
  `NotFound` (naming it) and writes nothing, so a lost update is never silent;
- `for_update` on a read makes the entity this transaction's until it ends: another
  transaction asking for it with `for_update` waits, so a read followed by a save loses
  no update. Methods that "pass over" entities another transaction is claiming or changing
  return without waiting for it, and return fewer;
- a transaction sees its own writes, and other transactions' only once they commit;
- driver errors never cross the port: a value the database refuses as data (a NUL
  character, a number out of its range) raises `UnstorableValue`; a statement it refuses as
  wrong (a bug, a schema out of step) raises `StoreFault`; only an unreachable, timed-out
  or locked database raises `StoreUnavailable`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

import attrs

from autokey.domain.model import ids
from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.idempotency import IdempotencyRecord, StoredResponse
from autokey.domain.model.keys import (
    Key,
    KeyPool,
    KeyStatus,
    MasterKeyId,
    PinnedIndexKey,
    PoolCounts,
)
from autokey.domain.model.merchant import (
    G2AOfferLink,
    MerchantAccessToken,
    MerchantCredential,
    MerchantNotification,
    Reservation,
    ReturnedKey,
)
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import Order, OrderStatus, SalesFilter
from autokey.domain.model.outbound import Delivery, WebhookEndpoint
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.model.webhooks import WebhookEvent


class TokenRepository(Protocol):
    async def add(self, token: ApiToken) -> None:
        """Store a new token. Raises DuplicateResource if its secret hash exists."""
        ...

    async def find_by_secret_hash(self, secret_hash: bytes) -> ApiToken | None:
        """The token whose secret hashes to `secret_hash`, revoked or not; None if unknown."""
        ...

    async def revoke(self, token_id: ids.TokenId, at: datetime) -> bool:
        """Mark the token revoked at `at`; False if unknown or already revoked (idempotent)."""
        ...

    async def list_all(self) -> Sequence[ApiToken]:
        """Every token, revoked ones included, in id (creation) order."""
        ...

    async def record_use(self, used: Mapping[ids.TokenId, datetime]) -> None:
        """Move each token's `last_used_at` forward to the time given (never backwards);
        unknown ids are ignored. Idempotent."""
        ...


class RevocationWatch(Protocol):
    """Tells this process, as soon as the database announces it, that a token was revoked in
    any process, so principals cached in memory can be trusted between announcements."""

    def epoch(self) -> int | None:
        """A number that changes whenever a revocation was announced; None while
        announcements may be missed (not yet listening, connection lost), when nothing
        may be served from a cache. Never raises, never waits."""
        ...


class PoolRepository(Protocol):
    async def add(self, pool: KeyPool) -> None:
        """Store a new pool. Raises DuplicateResource if its id is stored."""
        ...

    async def get(self, pool_id: ids.PoolId) -> KeyPool | None:
        """The pool with that id, of any seller; None if unknown."""
        ...

    async def list_for_seller(self, seller_id: ids.SubjectId, page: PageRequest) -> Page[KeyPool]:
        """The seller's pools in id (creation) order."""
        ...

    async def counts(self, pool_id: ids.PoolId) -> PoolCounts:
        """Keys per status; all zero for an empty or unknown pool."""
        ...

    async def available_counts(self, pool_ids: Collection[ids.PoolId]) -> Mapping[ids.PoolId, int]:
        """AVAILABLE keys per pool, for every pool asked (0 where none)."""
        ...

    async def fold_counts(self) -> int:
        """Housekeeping for stores that keep counts as appended changes: fold them into
        per-pool totals so `counts` stays cheap; returns how many totals changed (0 where
        there is nothing to fold). Counts are exact before and after; safe to run in several
        processes at once, and claims never wait for it."""
        ...


class KeyStage(Protocol):
    """The keys of one bulk upload, spooled outside any transaction (memory stays bounded),
    and stored at once by `KeyRepository.add_staged`, which may start while the stage is
    still being filled. A stage is filled by one task at a time, is made on the event loop
    that stores it, and is used only with the store that made it."""

    def put(self, keys: Sequence[Key]) -> None:
        """Append keys, in order. Synchronous and CPU-bound (encoding, file writes): call it
        from a worker thread, never on the event loop. Fingerprints may repeat."""
        ...

    def end(self) -> None:
        """No more keys will be put. Call it on the event loop, also when filling failed:
        `add_staged` returns only after it."""
        ...

    def __len__(self) -> int:
        """How many keys were put."""
        ...

    def close(self) -> None:
        """Discard the spool (ending it). Idempotent; the stage is unusable afterwards."""
        ...


class KeyRepository(Protocol):
    async def add_staged(self, stage: KeyStage) -> Sequence[int]:
        """Insert every staged key whose fingerprint is stored nowhere yet (in any pool) and
        was not staged at an earlier position; return the 0-based positions, ascending, of
        the keys skipped. The stage may still be filling: keys are stored as they are put,
        and this returns once the stage has ended. All or nothing with the rest of the
        transaction; fast on large stages (one bulk load, not one statement per key)."""
        ...

    async def add_new(self, keys: Sequence[Key]) -> frozenset[ids.KeyId]:
        """Insert every key whose fingerprint is stored nowhere yet (in any pool) and return
        the ids inserted; the others are skipped silently. The fingerprints within `keys`
        must be distinct (the caller de-duplicates a batch)."""
        ...

    async def get(self, key_id: ids.KeyId, *, for_update: bool = False) -> Key | None:
        """The key with that id (material included), or None if unknown. `for_update` makes
        it this transaction's until it ends (see the module docstring)."""
        ...

    async def find_by_fingerprint(self, fingerprint: bytes) -> Key | None:
        """The key stored under this blind index (in any pool), or None."""
        ...

    async def save(self, key: Key) -> None:
        """Persist a key's status, order and timestamps (never its material).
        Raises NotFound(resource="key") if no key with its id is stored."""
        ...

    async def list_in_pool(
        self, pool_id: ids.PoolId, status: KeyStatus | None, page: PageRequest
    ) -> Page[Key]:
        """A pool's keys in id order, optionally of one status."""
        ...

    async def claim(
        self, pool_id: ids.PoolId, order_id: ids.OrderId, quantity: int, now: datetime
    ) -> Sequence[ids.KeyId]:
        """Reserve up to `quantity` AVAILABLE keys of the pool for `order_id` (the model's
        `KeyTransition.RESERVE`), oldest first by `(created_at, id)`; returns their ids.
        Keys another transaction is claiming or changing are passed over, not waited for, so
        it may return fewer than asked (none for an unknown pool): the caller decides (with
        `count_available`) whether the pool is empty or merely busy. Not idempotent: each
        call reserves more keys."""
        ...

    async def claim_many(
        self,
        wants: Sequence[tuple[ids.OrderId, ids.PoolId, int]],
        now: datetime,
    ) -> Mapping[ids.OrderId, Sequence[ids.KeyId]]:
        """`claim` for several orders (order, its pool, quantity) at once (group commit), of
        any number of pools, each all or nothing: the orders of a pool are served in turn,
        oldest keys first, and serving that pool stops at its first order that cannot get
        every key it wants; those orders claim nothing. Returns the ids claimed for each order
        served, in id order (orders not served are absent). As in `claim`, keys another
        transaction holds are passed over, so an order may go unserved while its pool still
        has keys: the caller tries it again alone."""
        ...

    async def advance_claim_marks(self) -> int:
        """Housekeeping for stores whose claims start at a remembered mark: move each pool's
        mark to its oldest AVAILABLE key; returns how many marks moved (0 where claims need
        no mark). Claim order stays oldest first; a key that became AVAILABLE while this ran
        is still claimed, at the latest when the keys above the mark run out."""
        ...

    async def count_available(self, pool_id: ids.PoolId) -> int:
        """AVAILABLE keys of the pool as this transaction sees them, counting those another
        transaction is claiming but has not committed; 0 for an unknown pool."""
        ...

    async def for_order(self, order_id: ids.OrderId) -> Sequence[Key]:
        """The keys reserved for or delivered to an order, in id order; empty for an order
        without keys or an unknown one."""
        ...

    async def delivered_to(
        self, order_ids: Collection[ids.OrderId]
    ) -> Mapping[ids.OrderId, Sequence[ids.KeyId]]:
        """The ids of the DELIVERED keys of each order asked, in id order (orders without
        one are absent). Key material is not read."""
        ...

    async def release_order(self, order_id: ids.OrderId) -> Sequence[ids.KeyId]:
        """RESERVED -> AVAILABLE (`KeyTransition.RELEASE`) for every key of the order; returns
        the ids released. Idempotent: a second call finds none and returns
        nothing."""
        ...

    async def deliver_order(self, order_id: ids.OrderId, now: datetime) -> Sequence[Key]:
        """RESERVED -> DELIVERED (`KeyTransition.DELIVER`) at `now` for every key of the
        order; returns the keys delivered, as delivered, in id order. Idempotent: a second
        call finds none and returns nothing (`delivered_to` lists what was delivered)."""
        ...

    async def deliver_orders(
        self, order_ids: Collection[ids.OrderId], now: datetime
    ) -> Mapping[ids.OrderId, Sequence[Key]]:
        """`deliver_order` for several orders at once: the keys delivered to each, as
        delivered, in id order (orders without a RESERVED key are absent)."""
        ...


class KeyringRepository(Protocol):
    """What the store's sealed values need: which master keys, and which blind-index key."""

    async def master_key_ids(self) -> frozenset[MasterKeyId]:
        """Every master key id some stored sealed value names (keys, the pinned index key and
        webhook signing secrets); empty for an empty store."""
        ...

    async def index_key(self) -> PinnedIndexKey | None:
        """The pinned blind-index key, or None before first use."""
        ...

    async def pin_index_key(self, key: PinnedIndexKey) -> PinnedIndexKey:
        """Pin `key` unless one is pinned already; returns the pinned one. Concurrent callers
        all get the same key (the first to commit wins)."""
        ...

    async def reseal_index_key(self, sealed: bytes) -> None:
        """Replace the pinned index key's sealed value (the same key, sealed anew)."""
        ...

    async def sealed_under(
        self, master_key_ids: Collection[MasterKeyId], after: ids.KeyId | None, limit: int
    ) -> Sequence[Key]:
        """Up to `limit` keys with ids above `after`, in id order, whose sealed value names one
        of `master_key_ids`, made this transaction's until it ends; keys another transaction
        is claiming or changing are passed over, so a re-seal never waits for order traffic
        (a later pass picks them up)."""
        ...

    async def reseal_key(self, key_id: ids.KeyId, sealed: bytes) -> None:
        """Replace a key's sealed value (the same plaintext, sealed anew); nothing else."""
        ...


class OfferRepository(Protocol):
    async def add(self, offer: Offer) -> None:
        """Store a new offer. Raises DuplicateResource if its id is stored."""
        ...

    async def save(self, offer: Offer) -> None:
        """Persist every mutable field of an existing offer; NotFound if it is not stored."""
        ...

    async def get(self, offer_id: ids.OfferId) -> Offer | None:
        """The offer with that id, of any seller; None if unknown."""
        ...

    async def get_many(self, offer_ids: Collection[ids.OfferId]) -> Mapping[ids.OfferId, Offer]:
        """The offers with those ids, by id; unknown ids are absent."""
        ...

    async def list_for_seller(self, seller_id: ids.SubjectId, page: PageRequest) -> Page[Offer]:
        """The seller's offers in id (creation) order."""
        ...

    async def lock_stocked(self, pool_id: ids.PoolId | None, page: PageRequest) -> Page[Offer]:
        """ACTIVE AUTO_KEY offers of the pool (of every pool when None) in id order, made
        this transaction's until it ends; offers another transaction is sweeping or changing
        are passed over, so concurrent stock sweeps never record the same crossing twice."""
        ...


class OrderRepository(Protocol):
    async def add(self, order: Order) -> None:
        """Store a new order. Raises DuplicateResource(resource="order") if its id exists,
        DuplicateResource(resource=UPSTREAM_ORDER, id=<upstream id>) if another order holds
        its upstream order id; either way nothing is written and the transaction stays
        usable."""
        ...

    async def add_many(self, orders: Sequence[Order]) -> None:
        """Store new orders that have no upstream order id, all or none: DuplicateResource
        if one of their ids is stored (the transaction is then unusable)."""
        ...

    async def save(self, order: Order) -> None:
        """Persist status, timestamps, cancel reason and upstream fields of an existing order.
        NotFound if it is not stored; DuplicateResource(resource=UPSTREAM_ORDER) if another
        order holds its upstream order id (nothing written, the transaction stays usable)."""
        ...

    async def get(self, order_id: ids.OrderId, *, for_update: bool = False) -> Order | None:
        """The order with that id, of any buyer; None if unknown. `for_update` makes it this
        transaction's until it ends (see the module docstring)."""
        ...

    async def save_many(self, orders: Sequence[Order]) -> None:
        """`save` for several orders that have no upstream order id. NotFound, naming one,
        if one is not stored, raised here or by the time the transaction ends (a store may
        send the write without waiting for its answer); the transaction is then rolled back."""
        ...

    async def get_many(
        self, order_ids: Collection[ids.OrderId], *, for_update: bool = False
    ) -> Mapping[ids.OrderId, Order]:
        """The orders with those ids, by id; unknown ids are absent. `for_update` takes them
        in id order, so two transactions taking overlapping sets never deadlock."""
        ...

    async def list_for_buyer(
        self, buyer_id: ids.SubjectId, status: OrderStatus | None, page: PageRequest
    ) -> Page[Order]:
        """The buyer's orders, newest first; `page.after` continues below that id."""
        ...

    async def list_for_seller(
        self, seller_id: ids.SubjectId, which: SalesFilter, page: PageRequest
    ) -> Page[Order]:
        """The seller's orders matching `which`, newest first; `page.after` continues below
        that id."""
        ...

    async def lock_expired(self, now: datetime, limit: int) -> Sequence[Order]:
        """Up to `limit` PENDING orders whose reservation has ended at `now`
        (`reserved_until <= now`, as `Order.is_expired` says), oldest first, made this
        transaction's until it ends; orders another transaction is sweeping or changing are
        passed over, so sweepers never collide."""
        ...

    async def find_by_upstream_id(
        self, upstream_order_id: str, *, for_update: bool = False
    ) -> Order | None:
        """The order whose marketplace order id is `upstream_order_id` (unique), or None.
        `for_update` makes it this transaction's until it ends (see the module docstring)."""
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

    async def get_event(self, event_id: str) -> WebhookEvent | None:
        """The event stored under `event_id`; None if unknown."""
        ...


class IdempotencyRepository(Protocol):
    async def get(
        self, scope: str, key: str, *, for_update: bool = False
    ) -> IdempotencyRecord | None:
        """The record of `key` in `scope`, expired or not; None if there is none.
        `for_update` makes it this transaction's until it ends (see the module docstring)."""
        ...

    async def insert(self, record: IdempotencyRecord) -> bool:
        """Insert unless a record with the same scope and key exists; True if inserted."""
        ...

    async def replace(self, record: IdempotencyRecord) -> None:
        """Store the record, replacing any with the same scope and key (idempotent)."""
        ...

    async def complete(self, claim: IdempotencyRecord, response: StoredResponse) -> bool:
        """Mark the record completed with the response to replay, if it is still held by
        `claim` (`IdempotencyRecord.is_held_by`); True if so. False, changing nothing, when
        a later request took it over after the lease, or it is gone."""
        ...

    async def release(self, claim: IdempotencyRecord) -> None:
        """Delete the record if it is still held by `claim`; otherwise do nothing."""
        ...

    async def purge_expired(self, now: datetime) -> int:
        """Delete records whose retention ended; returns how many."""
        ...


class AuditLog(Protocol):
    async def append(self, events: Sequence[AuditEvent]) -> None:
        """Append events; nothing is ever updated or deleted."""
        ...

    async def list_events(self, pool_id: ids.PoolId | None, page: PageRequest) -> Page[AuditEvent]:
        """Events of one pool (or all, for admins) in id order."""
        ...


class EndpointRepository(Protocol):
    async def add(self, endpoint: WebhookEndpoint) -> None:
        """Store a new endpoint; its id must not be stored yet."""
        ...

    async def get(self, endpoint_id: ids.EndpointId) -> WebhookEndpoint | None:
        """The endpoint with that id, of any seller, disabled or not; None if unknown."""
        ...

    async def save(self, endpoint: WebhookEndpoint) -> None:
        """Persist status, failure and disabling fields of an existing endpoint; NotFound if
        it is not stored."""
        ...

    async def list_for_sellers(
        self, seller_ids: Collection[ids.SubjectId]
    ) -> Sequence[WebhookEndpoint]:
        """Every endpoint of those sellers, disabled ones included, in id (creation) order (one
        read for all the sellers of a batch)."""
        ...

    async def sealed_under(
        self, master_key_ids: Collection[MasterKeyId]
    ) -> Sequence[WebhookEndpoint]:
        """Every endpoint whose signing secret is sealed under one of `master_key_ids`; empty
        when there is none."""
        ...

    async def reseal(self, endpoint_id: ids.EndpointId, sealed_secret: bytes) -> None:
        """Replace an endpoint's sealed secret (the same secret, sealed anew); nothing else."""
        ...


class DeliveryRepository(Protocol):
    async def add(self, deliveries: Sequence[Delivery]) -> None:
        """Store new deliveries (none for an empty sequence); their ids must not be stored
        yet."""
        ...

    async def get(self, delivery_id: ids.DeliveryId) -> Delivery | None:
        """The delivery with that id, in any state; None if unknown."""
        ...

    async def save(self, delivery: Delivery) -> None:
        """Persist every mutable field of an existing delivery; NotFound if it is not
        stored."""
        ...

    async def lease_due(self, now: datetime, until: datetime, limit: int) -> Sequence[Delivery]:
        """Up to `limit` PENDING deliveries due by `now` and not leased past `now`, oldest
        due first, leased to the caller until `until` (and saved so). Concurrent callers
        never get the same delivery while its lease runs."""
        ...

    async def list_for_endpoint(
        self, endpoint_id: ids.EndpointId, page: PageRequest
    ) -> Page[Delivery]:
        """The endpoint's deliveries, newest first; `page.after` continues below that id.
        Empty for an endpoint without deliveries or an unknown one."""
        ...


class MerchantRepository(Protocol):
    """What the G2A merchant API keeps: credentials, access tokens, reservations, returned
    keys, notifications and the links of offers to G2A offers. Reservation ids are unique
    across sellers; every lookup takes the seller, so one seller never sees another's."""

    async def add_credential(self, credential: MerchantCredential) -> None:
        """Store new client credentials. Raises DuplicateResource if the client id exists."""
        ...

    async def get_credential(self, client_id: str) -> MerchantCredential | None:
        """The credentials of `client_id`, revoked or not; None if unknown."""
        ...

    async def revoke_credential(self, client_id: str, at: datetime) -> bool:
        """Revoke the credentials and every access token issued with them; False if unknown
        or already revoked (idempotent)."""
        ...

    async def add_access_token(self, token: MerchantAccessToken) -> None:
        """Store an access token (its hash); expired ones may be pruned at the same time."""
        ...

    async def find_access_token(self, token_hash: bytes) -> MerchantAccessToken | None:
        """The access token with that hash, expired or not; None if unknown."""
        ...

    async def find_linked_offers(
        self, products: Collection[tuple[ids.SubjectId, str]]
    ) -> Mapping[tuple[ids.SubjectId, str], Offer]:
        """By (seller, product id), the seller's ACTIVE AUTO_KEY offer whose g2aProductId is
        that product (at most one exists); pairs without one are absent."""
        ...

    async def add_reservation(self, reservation: Reservation) -> None:
        """Store a new reservation. Raises DuplicateResource if its id exists."""
        ...

    async def save_reservation(self, reservation: Reservation) -> None:
        """Persist state, expiry and G2A order id of an existing reservation (a reservation
        read in this transaction)."""
        ...

    async def get_reservation(
        self, seller_id: ids.SubjectId, reservation_id: str, *, for_update: bool = False
    ) -> Reservation | None:
        """The seller's reservation; None if unknown or another seller's. `for_update` makes
        it this transaction's until it ends, so an order, a release and a renewal of one
        reservation run one after the other."""
        ...

    async def get_reservations(
        self, wanted: Collection[tuple[ids.SubjectId, str]], *, for_update: bool = False
    ) -> Mapping[tuple[ids.SubjectId, str], Reservation]:
        """`get_reservation` for several (seller, reservation id) pairs at once (group commit),
        by pair; unknown ids and ids of another seller than the pair's are absent.
        `for_update` takes them in id order."""
        ...

    async def add_reservations(self, reservations: Sequence[Reservation]) -> None:
        """Store new reservations whose ids are fresh (those of their first order): a
        duplicate id fails the statement, and the transaction with it."""
        ...

    async def save_reservations(self, reservations: Sequence[Reservation]) -> None:
        """`save_reservation` for several reservations read in this transaction."""
        ...

    async def list_reservations(
        self, seller_id: ids.SubjectId, page: PageRequest
    ) -> Page[Reservation]:
        """The seller's reservations in id (creation) order; ids are UUID text, so
        `page.after` is the UUID of the last one seen."""
        ...

    async def find_ordered(self, seller_id: ids.SubjectId, order_ref: str) -> Reservation | None:
        """The seller's ORDERED reservation whose id (autokey's order id) or G2A order id is
        `order_ref`; None if there is none."""
        ...

    async def add_returned_keys(self, returned: Sequence[ReturnedKey]) -> int:
        """Record returned keys; a key returned before is skipped. Returns how many were new."""
        ...

    async def list_returned_keys(
        self, seller_id: ids.SubjectId, page: PageRequest
    ) -> Page[ReturnedKey]:
        """The seller's returned keys in key id order."""
        ...

    async def add_notification(self, notification: MerchantNotification) -> None:
        """Store a notification (append only)."""
        ...

    async def list_notifications(
        self, seller_id: ids.SubjectId, page: PageRequest
    ) -> Page[MerchantNotification]:
        """The seller's notifications in id (arrival) order."""
        ...

    async def save_link(self, link: G2AOfferLink) -> None:
        """Create or replace the offer's link. Raises DuplicateResource when the seller has
        another offer linked to the same G2A offer id."""
        ...

    async def get_link(self, offer_id: ids.OfferId) -> G2AOfferLink | None:
        """The offer's link to its G2A offer; None if the offer is not listed on G2A."""
        ...

    async def list_links(self) -> Sequence[G2AOfferLink]:
        """Every offer's link, in offer id order (one per offer listed on G2A: a small table)."""
        ...

    async def find_link(self, seller_id: ids.SubjectId, g2a_offer_id: str) -> G2AOfferLink | None:
        """The seller's link to that G2A offer id, or None."""
        ...


A = TypeVar("A")
B = TypeVar("B")


async def one_after_another(steps: Sequence[Awaitable[Any]]) -> list[Any]:
    """Each step awaited in turn: `UnitOfWork.together` where a step costs no round trip.
    After an error, the steps not begun are closed without running."""
    results: list[Any] = []
    try:
        for step in steps:
            results.append(await step)
    finally:
        for step in steps[len(results) + 1 :]:
            if inspect.iscoroutine(step):
                step.close()
    return results


@attrs.frozen(kw_only=True)
class UnitOfWork:
    """One transaction: the repositories a store hands out for it, all sharing the one
    transaction. Committed when the `transaction()` block exits normally, rolled back when
    it raises. A store builds one per transaction from its own repository classes."""

    tokens: TokenRepository
    pools: PoolRepository
    keys: KeyRepository
    offers: OfferRepository
    orders: OrderRepository
    idempotency: IdempotencyRepository
    audit: AuditLog
    webhooks: WebhookRepository
    endpoints: EndpointRepository
    deliveries: DeliveryRepository
    keyring: KeyringRepository
    merchant: MerchantRepository
    _together: Callable[[Sequence[Awaitable[Any]]], Awaitable[list[Any]]] = attrs.field(
        default=one_after_another, alias="together_steps"
    )

    async def together(self, first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
        """Two steps of this transaction that do not depend on each other, with their
        results. A store that talks to its database over a network sends both before it
        waits for either (on PostgreSQL one round trip instead of two). An error of either
        is raised, and the transaction is rolled back as for any error; the other step may
        have run or not. The error keeps its kind (NotFound, StoreUnavailable, ...) but may
        be reported through the other step, without the ids that step did not know: a step
        whose error is part of its answer (a duplicate, a missing reference) runs alone."""
        a, b = await self._together([first, second])
        return cast(A, a), cast(B, b)


class Store(Protocol):
    """A database: hands out transactions and reports its health."""

    name: str
    """`memory`, `sqlite` or `postgres`, for health reports and logs."""

    def stage_keys(self) -> KeyStage:
        """A new, empty stage for this store's `KeyRepository.add_staged`; opens nothing
        that the database holds. Close it when done."""
        ...

    def transaction(self, *, optimistic: bool = False) -> AbstractAsyncContextManager[UnitOfWork]:
        """Begin a transaction. Raises StoreUnavailable if the database cannot be reached.

        `optimistic`: a store may answer a locked read of an order, or a read of an offer,
        from a copy it kept of that row, and check the copy against the row in the same
        transaction instead of waiting for the read. A copy that no longer matches, or any
        error after such a read, fails the transaction with StaleRead and rolls it back;
        the step must then run again in a plain transaction."""
        ...

    def bulk_transaction(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A transaction like `transaction()` for bulk loads (`KeyRepository.add_staged`): a
        store may give up its per-statement shortcuts there for its bulk path."""
        ...

    async def ping(self) -> None:
        """Round-trip to the database; raises StoreUnavailable when it does not answer."""
        ...

    async def schema_version(self) -> int:
        """The highest migration applied (0 for a store without migrations)."""
        ...

    @property
    def shipped_schema_version(self) -> int:
        """The highest migration this code ships (0 for a store without migrations): a
        store whose `schema_version()` is lower needs `migrate()` before it can serve."""
        ...

    async def migrate(self) -> Sequence[int]:
        """Apply pending numbered migrations in order and record them; returns the versions
        applied now. Idempotent, and safe when several processes run it at once."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
