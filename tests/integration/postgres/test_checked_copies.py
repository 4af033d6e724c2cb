"""Checked copies (ADR 0040): an optimistic transaction takes an order or an offer from the
copy this process kept instead of reading it, and checks the row against the copy in the same
transaction. Two stores on one database stand for two autokey processes: what one changes,
the other's copies no longer match."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest

from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import IllegalTransition, StaleRead
from autokey.domain.model.ids import SubjectId
from autokey.domain.model.offers import Offer, OfferStatus
from autokey.domain.model.orders import Order, OrderStatus
from tests import builders as b

pytestmark = pytest.mark.postgres


@pytest.fixture
async def other(pg_url: str, pg_store: PostgresStore) -> AsyncIterator[PostgresStore]:
    """A second store on `pg_store`'s database: another autokey process."""
    store = await PostgresStore.open(pg_url)
    try:
        yield store
    finally:
        await store.close()


async def _stored(store: PostgresStore, keys: int = 0) -> tuple[Offer, Order]:
    """An offer with `keys` keys and an order of it (no key reserved), stored through `store`."""
    _, offer = await b.stored_offer(store, keys)
    order = b.order(offer, SubjectId(uuid.uuid4()))
    async with store.transaction() as tx:
        await tx.orders.add_many([order])
    return offer, order


async def _status(url: str, order: Order) -> str:
    async with await psycopg.AsyncConnection.connect(url) as db:
        row = await (
            await db.execute("SELECT status FROM orders WHERE id = %s", (order.id,))
        ).fetchone()
    assert row is not None
    return str(row[0])


async def _cancel(store: PostgresStore, order: Order) -> None:
    """`order` canceled through `store`: by another process, for the store under test."""
    async with store.transaction() as tx:
        theirs = await tx.orders.get(order.id, for_update=True)
        assert theirs is not None
        theirs.cancel(b.T0 + timedelta(seconds=1), "changed_my_mind")
        await tx.orders.save(theirs)


async def test_a_copy_another_process_made_stale_fails_the_transaction_and_is_dropped(
    pg_store: PostgresStore, other: PostgresStore, pg_url: str
) -> None:
    _, order = await _stored(pg_store)  # committed here: this store keeps a copy
    await _cancel(other, order)

    with pytest.raises(StaleRead):
        async with pg_store.transaction(optimistic=True) as tx:
            mine = await tx.orders.get(order.id, for_update=True)
            assert mine is not None
            assert mine.status is OrderStatus.PENDING  # the copy, not the row
            mine.pay(b.T0 + timedelta(seconds=2))
            await tx.orders.save_many([mine])
    assert await _status(pg_url, order) == "CANCELED"  # the pay was not kept

    async with pg_store.transaction(optimistic=True) as tx:  # the stale copy is gone
        again = await tx.orders.get(order.id, for_update=True)
    assert again is not None
    assert again.status is OrderStatus.CANCELED


async def test_a_plain_transaction_never_answers_from_a_copy(
    pg_store: PostgresStore, other: PostgresStore
) -> None:
    _, order = await _stored(pg_store)
    await _cancel(other, order)
    async with pg_store.transaction() as tx:
        mine = await tx.orders.get(order.id, for_update=True)
    assert mine is not None
    assert mine.status is OrderStatus.CANCELED


async def test_a_copy_that_still_matches_is_used_and_the_change_kept(
    pg_store: PostgresStore, pg_url: str
) -> None:
    _, order = await _stored(pg_store)
    async with pg_store.transaction(optimistic=True) as tx:
        mine = await tx.orders.get(order.id, for_update=True)
        assert mine is not None
        mine.pay(b.T0 + timedelta(seconds=1))
        await tx.orders.save_many([mine])
    assert await _status(pg_url, order) == "PAID"


async def test_an_offer_copy_another_process_made_stale_fails_the_transaction(
    pg_store: PostgresStore, other: PostgresStore
) -> None:
    offer, order = await _stored(pg_store)
    async with other.transaction() as tx:
        theirs = await tx.offers.get(offer.id)
        assert theirs is not None
        theirs.status = OfferStatus.INACTIVE
        await tx.offers.save(theirs)

    with pytest.raises(StaleRead):
        async with pg_store.transaction(optimistic=True) as tx:
            mine = await tx.offers.get(offer.id)
            assert mine is not None
            assert mine.status is not OfferStatus.INACTIVE  # the copy, not the row
            await tx.keys.count_available(order.pool_id)  # the check travels with this
    async with pg_store.transaction(optimistic=True) as tx:
        again = await tx.offers.get(offer.id)
    assert again is not None
    assert again.status is OfferStatus.INACTIVE


async def test_an_order_another_process_paid_is_fulfilled_from_the_row(
    pg_store: PostgresStore, other: PostgresStore
) -> None:
    """The copy kept here says PENDING; the rule refuses to fulfil that, so the call runs
    again on the row, which says PAID."""
    offer, _ = await _stored(pg_store, keys=1)
    here, there = b.order_service(pg_store), b.order_service(other)
    buyer = Principal(subject=SubjectId(uuid.uuid4()), role=Role.BUYER)
    created = await here.create(buyer, offer.id, 1)
    await there.pay(buyer, created.order.id)
    fulfilled = await here.fulfill(buyer, created.order.id)
    assert fulfilled.order.status is OrderStatus.FULFILLED
    assert len(fulfilled.keys) == 1


async def test_paying_an_order_another_process_canceled_reports_the_row_not_the_copy(
    pg_store: PostgresStore, other: PostgresStore, pg_url: str
) -> None:
    offer, _ = await _stored(pg_store, keys=1)
    here, there = b.order_service(pg_store), b.order_service(other)
    buyer = Principal(subject=SubjectId(uuid.uuid4()), role=Role.BUYER)
    created = await here.create(buyer, offer.id, 1)
    async with other.transaction() as tx:
        await there.cancel_in(tx, buyer, created.order.id)
    with pytest.raises(IllegalTransition) as refused:
        await here.pay(buyer, created.order.id)
    assert refused.value.current == OrderStatus.CANCELED
    assert await _status(pg_url, created.order) == "CANCELED"
