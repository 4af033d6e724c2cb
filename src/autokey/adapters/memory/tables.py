"""The tables of the in-memory store, the journal that undoes a failed transaction, and the
helpers its repositories share."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import attrs

from autokey.domain.model import ids, merchant
from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.errors import NotFound
from autokey.domain.model.idempotency import IdempotencyRecord
from autokey.domain.model.keys import Key, KeyPool, KeyStatus, PinnedIndexKey
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import Order
from autokey.domain.model.outbound import Delivery, WebhookEndpoint
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.model.webhooks import WebhookEvent

T = TypeVar("T")
_MISSING: Any = object()


@attrs.define
class MerchantTables:
    credentials: dict[str, merchant.MerchantCredential] = attrs.Factory(dict)
    tokens: dict[bytes, merchant.MerchantAccessToken] = attrs.Factory(dict)
    reservations: dict[str, merchant.Reservation] = attrs.Factory(dict)
    returned: dict[ids.KeyId, merchant.ReturnedKey] = attrs.Factory(dict)
    notifications: list[merchant.MerchantNotification] = attrs.Factory(list)
    links: dict[ids.OfferId, merchant.G2AOfferLink] = attrs.Factory(dict)


@attrs.define
class Tables:
    tokens: dict[bytes, ApiToken] = attrs.Factory(dict)
    pools: dict[ids.PoolId, KeyPool] = attrs.Factory(dict)
    keys: dict[ids.KeyId, Key] = attrs.Factory(dict)
    key_counts: dict[tuple[ids.PoolId, KeyStatus], int] = attrs.Factory(dict)
    """Keys per pool and status, kept by `put_key` so counting never walks `keys`."""
    claimable: dict[ids.PoolId, list[tuple[datetime, ids.KeyId]]] = attrs.Factory(dict)
    """Per pool, a heap of (created_at, id) of keys that were AVAILABLE when pushed (by
    `put_key`), so a claim takes the oldest without walking `keys`. Entries may be stale: a
    claim skips any whose key is no longer AVAILABLE."""
    order_keys: dict[ids.OrderId, set[ids.KeyId]] = attrs.Factory(dict)
    """Per order, the ids of keys ever stored with that order_id (by `put_key`), so an order's
    keys are found without walking `keys`. A superset (a rollback leaves its ids): readers
    check that the key is still stored, with that `order_id`."""
    fingerprints: dict[bytes, ids.KeyId] = attrs.Factory(dict)
    offers: dict[ids.OfferId, Offer] = attrs.Factory(dict)
    orders: dict[ids.OrderId, Order] = attrs.Factory(dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = attrs.Factory(dict)
    audit: list[AuditEvent] = attrs.Factory(list)
    nonces: dict[str, datetime] = attrs.Factory(dict)
    events: dict[str, WebhookEvent] = attrs.Factory(dict)
    endpoints: dict[ids.EndpointId, WebhookEndpoint] = attrs.Factory(dict)
    deliveries: dict[ids.DeliveryId, Delivery] = attrs.Factory(dict)
    index_key: dict[int, PinnedIndexKey] = attrs.Factory(dict)
    """At most one entry, under key 1 (the journal undoes dict writes)."""
    merchant: MerchantTables = attrs.Factory(MerchantTables)


class Journal:
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

    def put_key(self, t: Tables, key: Key) -> None:
        """Store `key` (journalled), move the counts of its old and new status, and index it
        (`Tables.claimable`, `Tables.order_keys`; their stale entries need no undo)."""
        old = t.keys.get(key.id)
        moves = [] if old is None else [((old.pool_id, old.status), -1)]
        for slot, step in [*moves, ((key.pool_id, key.status), 1)]:
            self.put(t.key_counts, slot, t.key_counts.get(slot, 0) + step)
        self.put(t.keys, key.id, key)
        if key.status is KeyStatus.AVAILABLE and (old is None or old.status is not key.status):
            heapq.heappush(t.claimable.setdefault(key.pool_id, []), (key.created_at, key.id))
        if key.order_id is not None:
            t.order_keys.setdefault(key.order_id, set()).add(key.id)

    def take_claimable(self, t: Tables, pool_id: ids.PoolId, quantity: int) -> list[Key]:
        """Up to `quantity` of the pool's AVAILABLE keys, oldest first (created_at, then id).
        Their heap entries are taken out; a rollback puts back every entry taken."""
        heap = t.claimable.get(pool_id, [])
        found: dict[ids.KeyId, Key] = {}
        taken: list[tuple[datetime, ids.KeyId]] = []
        while heap and len(found) < quantity:
            entry = heapq.heappop(heap)
            taken.append(entry)
            key = t.keys.get(entry[1])
            if key is not None and key.status is KeyStatus.AVAILABLE:
                found[key.id] = key  # an id pushed twice is found once
        if taken:
            self._undo.append(lambda: _push_all(heap, taken))
        return list(found.values())

    def rollback(self) -> None:
        while self._undo:
            self._undo.pop()()


def _push_all(
    heap: list[tuple[datetime, ids.KeyId]], entries: Iterable[tuple[datetime, ids.KeyId]]
) -> None:
    for entry in entries:
        heapq.heappush(heap, entry)


def copy(entity: T) -> T:
    """Entities are mutable: hand out and store copies so callers cannot edit the store."""
    return attrs.evolve(entity)  # type: ignore[misc]


def stored(table: Mapping[Any, T], entity_id: UUID, resource: str) -> T:
    """The stored entity `save` is about to overwrite; NotFound if there is none."""
    if entity_id not in table:
        raise NotFound(resource=resource, id=str(entity_id))
    return table[entity_id]


def page_of(
    items: Sequence[T], page: PageRequest, key: Callable[[T], UUID], *, desc: bool = False
) -> Page[T]:
    ordered = sorted(items, key=key, reverse=desc)
    if page.after is not None:
        after = page.after
        ordered = [i for i in ordered if (key(i) < after if desc else key(i) > after)]
    chunk = [copy(i) for i in ordered[: page.limit]]
    more = len(ordered) > page.limit
    return Page(items=chunk, next_after=key(chunk[-1]) if more and chunk else None)
