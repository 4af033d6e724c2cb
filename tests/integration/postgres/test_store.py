"""PostgreSQL specifics the shared contract cannot see: exact decimals, large batches,
foreign keys, a transaction that stays usable after a refused duplicate, upstream order ids
that are unique, and steps sent together (one round trip)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import attrs
import psycopg
import pytest

from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.errors import DuplicateResource, NotFound, StoreFault
from autokey.domain.model.ids import EventId, KeyId, OrderId
from autokey.domain.model.keys import PoolCounts
from autokey.domain.model.offers import Money
from autokey.domain.model.orders import Order, UpstreamState
from autokey.domain.model.pages import PageRequest
from tests import builders as b

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("amount", ["9.99", "0.0001", "1000000", "12.50"])
async def test_prices_round_trip_digit_for_digit(pg_store: PostgresStore, amount: str) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = attrs.evolve(
        b.offer(owner, pool.id), price=Money(amount=Decimal(amount), currency="USD")
    )
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
    async with pg_store.transaction() as tx:
        loaded = await tx.offers.get(offer.id)
    assert loaded is not None
    assert str(loaded.price.amount) == amount
    assert loaded.price.currency == "USD"


async def test_a_batch_of_ten_thousand_keys_is_stored_and_repeats_are_skipped(
    pg_store: PostgresStore,
) -> None:
    first, second = b.pool(), b.pool()
    batch = [b.key(first.id) for _ in range(10_000)]
    async with pg_store.transaction() as tx:
        await tx.pools.add(first)
        await tx.pools.add(second)
        assert await tx.keys.add_new(batch) == {k.id for k in batch}
    # The same plaintexts uploaded to another pool are all recognised as duplicates.
    again = [attrs.evolve(k, id=b.key(second.id).id, pool_id=second.id) for k in batch[:5000]]
    fresh = [b.key(second.id) for _ in range(10)]
    async with pg_store.transaction() as tx:
        assert await tx.keys.add_new([*again, *fresh]) == {k.id for k in fresh}
        assert await tx.pools.counts(first.id) == PoolCounts(available=10_000)
        assert await tx.pools.counts(second.id) == PoolCounts(available=10)


async def test_keys_for_an_unknown_pool_are_refused_as_not_found(
    pg_store: PostgresStore,
) -> None:
    ghost = b.pool()
    with pytest.raises(NotFound) as caught:
        async with pg_store.transaction() as tx:
            await tx.keys.add_new([b.key(ghost.id)])
    assert (caught.value.resource, caught.value.id) == ("pool", str(ghost.id))


async def test_an_order_for_an_unknown_offer_is_refused_as_not_found(
    pg_store: PostgresStore,
) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    ghost = b.offer(owner, pool.id)
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
    with pytest.raises(NotFound) as caught:
        async with pg_store.transaction() as tx:
            await tx.orders.add(b.order(ghost, b.seller()))
    assert (caught.value.resource, caught.value.id) == ("offer", str(ghost.id))


async def test_a_refused_duplicate_leaves_the_transaction_usable(
    pg_store: PostgresStore,
) -> None:
    token, pool = b.token(), b.pool()
    async with pg_store.transaction() as tx:
        await tx.tokens.add(token)
    async with pg_store.transaction() as tx:
        with pytest.raises(DuplicateResource):
            await tx.tokens.add(attrs.evolve(token, id=b.token().id))
        await tx.pools.add(pool)
    async with pg_store.transaction() as tx:
        assert await tx.pools.get(pool.id) == pool


def _sourced(order: Order, upstream_id: str) -> Order:
    order.pay(b.T0)
    order.start_sourcing(b.T0)
    order.record_upstream(UpstreamState.CREATED, b.T0, upstream_id)
    return order


async def test_a_second_order_with_the_same_upstream_id_is_a_duplicate(
    pg_store: PostgresStore,
) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    first = _sourced(b.order(offer, b.seller()), "G2A-dup")
    second, third = b.order(offer, b.seller()), b.order(offer, b.seller())
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.orders.add(first)
        await tx.orders.add(second)
    async with pg_store.transaction() as tx:
        with pytest.raises(DuplicateResource) as on_add:
            await tx.orders.add(_sourced(third, "G2A-dup"))
        with pytest.raises(DuplicateResource) as on_save:
            await tx.orders.save(_sourced(second, "G2A-dup"))
        # Neither refusal aborted the transaction: it still reads and writes.
        assert await tx.orders.get(second.id) is not None
        await tx.orders.add(attrs.evolve(third, upstream_order_id="G2A-third"))
    assert (on_add.value.resource, on_add.value.id) == ("upstream_order", "G2A-dup")
    assert (on_save.value.resource, on_save.value.id) == ("upstream_order", "G2A-dup")
    async with pg_store.transaction() as tx:
        found = await tx.orders.find_by_upstream_id("G2A-dup")
        assert found is not None
        assert found.id == first.id
        saved = await tx.orders.get(second.id)
        assert saved is not None
        assert saved.upstream_order_id is None
        assert await tx.orders.find_by_upstream_id("G2A-third") is not None
        # Re-saving an order with its own upstream id is no duplicate.
        await tx.orders.save(first)


async def test_a_duplicate_order_id_is_still_reported_as_that_order(
    pg_store: PostgresStore,
) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    order = _sourced(b.order(offer, b.seller()), "G2A-1")
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.orders.add(order)
    async with pg_store.transaction() as tx:
        with pytest.raises(DuplicateResource) as caught:
            await tx.orders.add(order)
    assert (caught.value.resource, caught.value.id) == ("order", str(order.id))


async def test_listing_every_status_pages_through_a_mixed_pool_in_id_order(
    pg_store: PostgresStore,
) -> None:
    pool = b.pool()
    keys = [b.key(pool.id) for _ in range(9)]
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new(keys)
        await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 2, b.T0)
        delivered = OrderId(b.new_uuid())
        await tx.keys.claim(pool.id, delivered, 2, b.T0)
        await tx.keys.deliver_order(delivered, b.T0)
        doomed = await tx.keys.get(keys[8].id)
        assert doomed is not None
        doomed.invalidate()
        await tx.keys.save(doomed)
    seen: list[KeyId] = []
    after = None
    async with pg_store.transaction() as tx:
        while True:
            page = await tx.keys.list_in_pool(pool.id, None, PageRequest(limit=2, after=after))
            seen.extend(k.id for k in page.items)
            if page.next_after is None:
                break
            after = page.next_after
    assert seen == [k.id for k in keys]


async def test_transactions_are_read_committed_and_sessions_in_utc(
    pg_store: PostgresStore, pg_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        dbname = psycopg.conninfo.conninfo_to_dict(pg_url)["dbname"]
        await admin.execute(
            f'ALTER DATABASE "{dbname}" SET default_transaction_isolation = serializable'
        )
        await admin.execute(f"ALTER DATABASE \"{dbname}\" SET timezone = 'Asia/Tokyo'")
    store = await PostgresStore.open(pg_url, min_size=1, max_size=1)
    try:
        pool = b.pool()
        async with store.transaction() as tx:
            await tx.pools.add(pool)
        async with store.transaction() as tx:
            loaded = await tx.pools.get(pool.id)
        assert loaded is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert loaded == pool
        # White-box: the isolation level is only observable from inside a transaction.
        async with store._pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SHOW transaction_isolation")
            assert await cur.fetchone() == ("read committed",)
    finally:
        await store.close()


async def test_a_queued_write_that_fails_at_commit_rolls_everything_back(
    pg_url: str, pg_store: PostgresStore
) -> None:
    # One connection, so the next transaction runs on the very connection that failed.
    store = await PostgresStore.open(pg_url, max_size=1)
    pool = b.pool()
    key = b.key(pool.id)
    event = AuditEvent(
        id=EventId(b.new_uuid()),
        occurred_at=b.T0,
        action=AuditAction.KEYS_RESERVED,
        actor=None,
        pool_id=pool.id,
    )
    try:
        async with store.transaction() as tx:
            await tx.pools.add(pool)
            await tx.keys.add_new([key])
        with pytest.raises(StoreFault) as caught:
            async with store.transaction() as tx:
                await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 1, b.T0)
                # Audit rows are queued without waiting (ADR 0016): the second append's
                # duplicate id fails only at COMMIT.
                await tx.audit.append([event])
                await tx.audit.append([event])
        assert isinstance(caught.value.__cause__, psycopg.errors.UniqueViolation)
        async with store.transaction() as tx:
            assert await tx.pools.counts(pool.id) == PoolCounts(available=1)
            stored = await tx.keys.get(key.id)
            assert stored is not None
            assert stored.order_id is None
    finally:
        await store.close()


async def test_two_reads_together_wait_for_one_answer(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`UnitOfWork.together` sends both statements before reading: the connection waits for
    the server once, where the same reads one after the other wait twice."""
    pool, offer = await b.stored_offer(pg_store)
    loop = asyncio.get_running_loop()
    waits = 0
    add_reader = loop.add_reader

    def counted(fd: Any, callback: Callable[..., object], *args: Any) -> None:
        nonlocal waits
        waits += 1
        add_reader(fd, callback, *args)

    monkeypatch.setattr(loop, "add_reader", counted)
    async with pg_store.transaction() as tx:
        assert await tx.pools.get(pool.id) == pool  # BEGIN has been answered
        waits = 0
        assert await tx.together(tx.offers.get(offer.id), tx.pools.get(pool.id)) == (offer, pool)
        together, waits = waits, 0
        assert (await tx.offers.get(offer.id), await tx.pools.get(pool.id)) == (offer, pool)
        apart = waits
    assert (together, apart) == (1, 2)


async def test_a_step_together_that_sends_nothing_holds_the_other_back_for_nothing(
    pg_store: PostgresStore,
) -> None:
    pool = b.pool()

    async def no_statement() -> str:
        return "nothing sent"

    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        both = tx.together(no_statement(), tx.pools.get(pool.id))
        assert await asyncio.wait_for(both, 5) == ("nothing sent", pool)


@pytest.mark.parametrize("failing", [0, 1])
async def test_a_statement_the_server_refuses_together_is_the_error_raised(
    pg_store: PostgresStore, failing: int
) -> None:
    """The refused statement aborts the pipeline, so the other step fails too: the error
    raised is the refusal (NotFound of the offer), not the aborted pipeline, whichever step
    reads it first (it names the offer's id only when it is its own step's)."""
    pool, offer = await b.stored_offer(pg_store)
    ghost = b.offer(pool.seller_id, pool.id)
    with pytest.raises(NotFound) as caught:
        async with pg_store.transaction() as tx:
            steps = [tx.orders.add(b.order(ghost, b.seller())), tx.offers.get(offer.id)]
            await tx.together(steps[failing], steps[1 - failing])
    assert caught.value.resource == "offer"
    assert caught.value.id in ("", str(ghost.id))
    async with pg_store.transaction() as tx:
        assert await tx.offers.get(offer.id) == offer  # the connection is usable again
