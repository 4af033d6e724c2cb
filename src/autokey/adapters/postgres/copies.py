"""Checked copies (ADR 0040): the last committed state this process saw of orders and offers,
so that an optimistic transaction can take a row from memory instead of waiting for a read.

A copy is only ever a candidate. The transaction that uses one queues a statement checking
the row against it (and locking it, where the read would have locked it) ahead of its own
statements, in the same flight as the first of them. A row that no longer matches raises
`autokey_stale` (migration 0015), the transaction fails as a whole, and the copy is dropped.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Final, Generic, TypeVar

from autokey.domain.model.ids import OfferId, OrderId
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import Order

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R", Order, Offer)

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


class _Taken(Generic[K, R]):
    """One kind's side of a ledger: the copies taken, and the rows seen."""

    def __init__(self, kept: _Kept[K, R]) -> None:
        self.kept: _Kept[K, R] = kept
        self.used: set[K] = set()
        self.seen: dict[K, R] = {}

    def take(self, key: K) -> R | None:
        """A copy (never of a row this transaction already read or wrote: a read then sees
        its own writes)."""
        if key in self.used or key in self.seen or (row := self.kept.get(key)) is None:
            return None
        self.used.add(key)
        return copy.copy(row)

    def saw(self, key: K, row: R) -> None:
        self.seen[key] = copy.copy(row)  # a snapshot: the caller's object may change

    def committed(self) -> None:
        for key, row in self.seen.items():
            self.kept.put(key, row)

    def failed(self) -> None:
        for key in self.used | self.seen.keys():
            self.kept.drop(key)


class Ledger:
    """What one transaction took from the copies and what it saw of the rows: the copies it
    used are dropped if it fails (one may be stale), and what it saw is kept once it
    commits. Only an optimistic transaction takes copies."""

    def __init__(self, copies: Copies, *, optimistic: bool) -> None:
        self.optimistic = optimistic
        self._orders = _Taken(copies.orders)
        self._offers = _Taken(copies.offers)

    @property
    def used(self) -> bool:
        return bool(self._orders.used or self._offers.used)

    def order(self, order_id: OrderId) -> Order | None:
        """A copy of the order to stand for a locked read, if this transaction may use one."""
        return self._orders.take(order_id) if self.optimistic else None

    def offer(self, offer_id: OfferId) -> Offer | None:
        return self._offers.take(offer_id) if self.optimistic else None

    def saw_orders(self, orders: Iterable[Order]) -> None:
        for order in orders:
            self._orders.saw(order.id, order)

    def saw_offers(self, offers: Iterable[Offer]) -> None:
        for offer in offers:
            self._offers.saw(offer.id, offer)

    def committed(self) -> None:
        self._orders.committed()
        self._offers.committed()

    def failed(self) -> None:
        self._orders.failed()
        self._offers.failed()
