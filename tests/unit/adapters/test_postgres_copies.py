"""The copies a PostgreSQL store keeps (ADR 0040): bounded, snapshots, dropped on failure."""

from __future__ import annotations

from datetime import timedelta

from autokey.adapters.postgres.copies import Copies, Ledger
from autokey.domain.model.ids import SubjectId
from autokey.domain.model.orders import Order, OrderStatus
from tests import builders as b


def _orders(n: int) -> list[Order]:
    seller = b.seller()
    offer = b.offer(seller, b.pool(seller).id)
    return [b.order(offer, SubjectId(b.new_uuid())) for _ in range(n)]


def test_the_least_recently_used_copy_goes_first_past_the_limit() -> None:
    copies = Copies(limit=2)
    first, second, third = _orders(3)
    ledger = Ledger(copies, optimistic=True)
    ledger.saw_orders([first, second])
    ledger.committed()
    assert Ledger(copies, optimistic=True).order(first.id) is not None  # used: now the newest
    ledger = Ledger(copies, optimistic=True)
    ledger.saw_orders([third])
    ledger.committed()
    kept = Ledger(copies, optimistic=True)
    assert kept.order(second.id) is None
    assert kept.order(first.id) is not None
    assert kept.order(third.id) is not None


def test_a_copy_is_a_snapshot_neither_the_writer_nor_a_reader_can_change() -> None:
    copies = Copies()
    (order,) = _orders(1)
    ledger = Ledger(copies, optimistic=True)
    ledger.saw_orders([order])
    ledger.committed()
    order.pay(b.T0 + timedelta(seconds=1))  # the writer's object changes after the save
    taken = Ledger(copies, optimistic=True).order(order.id)
    assert taken is not None
    assert taken.status is OrderStatus.PENDING
    taken.pay(b.T0 + timedelta(seconds=1))
    again = Ledger(copies, optimistic=True).order(order.id)
    assert again is not None
    assert again.status is OrderStatus.PENDING


def test_only_an_optimistic_transaction_takes_copies_and_a_failed_one_drops_them() -> None:
    copies = Copies()
    (order,) = _orders(1)
    ledger = Ledger(copies, optimistic=False)
    ledger.saw_orders([order])
    ledger.committed()
    assert Ledger(copies, optimistic=False).order(order.id) is None
    failing = Ledger(copies, optimistic=True)
    assert failing.order(order.id) is not None
    assert failing.used
    failing.failed()
    assert Ledger(copies, optimistic=True).order(order.id) is None


def test_a_transaction_takes_no_copy_of_an_order_it_already_read_or_wrote() -> None:
    """Its second read must see its own writes (a settle pays, saves, then fulfils)."""
    copies = Copies()
    first, second = _orders(2)
    ledger = Ledger(copies, optimistic=True)
    ledger.saw_orders([first, second])
    ledger.committed()
    ledger = Ledger(copies, optimistic=True)
    assert ledger.order(first.id) is not None
    assert ledger.order(first.id) is None  # taken once already
    ledger.saw_orders([second])  # written by this transaction
    assert ledger.order(second.id) is None
