"""Checked copies (ADR 0040): the last committed state this process saw of orders and offers,
so that an optimistic transaction can take a row from memory instead of waiting for a read.

A copy is only ever a candidate. The transaction that uses one queues a statement checking
the row against it (and locking it, where the read would have locked it) ahead of its own
statements, in the same flight as the first of them. A row that no longer matches raises
`autokey_stale` (migration 0015), the transaction fails as a whole, and the copy is dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Final, Generic, TypeVar

import attrs

from autokey.domain.model.ids import OfferId, OrderId
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import Order

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

KEPT: Final = 10_000
"""Copies of each kind kept per process; the oldest used goes first."""


class _Kept(Generic[K, V]):
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._rows: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        row = self._rows.get(key)
        if row is not None:
            self._rows.move_to_end(key)
        return row

    def put(self, key: K, row: V) -> None:
        self._rows[key] = row
        self._rows.move_to_end(key)
        if len(self._rows) > self._limit:
            self._rows.popitem(last=False)

    def drop(self, key: K) -> None:
        self._rows.pop(key, None)


class Copies:
    """The copies of one store (one process), shared by its transactions."""

    def __init__(self, limit: int = KEPT) -> None:
        self.orders: _Kept[OrderId, Order] = _Kept(limit)
        self.offers: _Kept[OfferId, Offer] = _Kept(limit)


@attrs.define
class Ledger:
    """What one transaction took from the copies and what it saw of the rows: the copies it
    used are dropped if it fails, and what it saw is kept once it commits."""

    copies: Copies
    optimistic: bool
    used_orders: set[OrderId] = attrs.field(factory=set)
    used_offers: set[OfferId] = attrs.field(factory=set)
    seen_orders: dict[OrderId, Order] = attrs.field(factory=dict)
    seen_offers: dict[OfferId, Offer] = attrs.field(factory=dict)

    @property
    def used(self) -> bool:
        return bool(self.used_orders or self.used_offers)

    def order(self, order_id: OrderId) -> Order | None:
        """A copy of the order to stand for a locked read, if this transaction may use one:
        never for an order it already read or wrote (a read then sees its own writes)."""
        if not self.optimistic or order_id in self.used_orders or order_id in self.seen_orders:
            return None
        if (kept := self.copies.orders.get(order_id)) is None:
            return None
        self.used_orders.add(order_id)
        return attrs.evolve(kept)

    def offer(self, offer_id: OfferId) -> Offer | None:
        if not self.optimistic or offer_id in self.used_offers or offer_id in self.seen_offers:
            return None
        if (kept := self.copies.offers.get(offer_id)) is None:
            return None
        self.used_offers.add(offer_id)
        return attrs.evolve(kept)

    def saw_orders(self, orders: Iterable[Order]) -> None:
        """Orders as this transaction reads or writes them (a snapshot: the caller's object
        may change afterwards)."""
        for order in orders:
            self.seen_orders[order.id] = attrs.evolve(order)

    def saw_offers(self, offers: Iterable[Offer]) -> None:
        for offer in offers:
            self.seen_offers[offer.id] = attrs.evolve(offer)

    def committed(self) -> None:
        for order_id, order in self.seen_orders.items():
            self.copies.orders.put(order_id, order)
        for offer_id, offer in self.seen_offers.items():
            self.copies.offers.put(offer_id, offer)

    def failed(self) -> None:
        """Drop the copies this transaction used (one may be stale) and what it saw."""
        for order_id in self.used_orders | self.seen_orders.keys():
            self.copies.orders.drop(order_id)
        for offer_id in self.used_offers | self.seen_offers.keys():
            self.copies.offers.drop(offer_id)
