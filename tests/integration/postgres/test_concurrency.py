"""Real concurrency against real PostgreSQL: claims and sweeps skip each other's locks, and
racing webhook deliveries record a nonce and an event exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from autokey.adapters.postgres.store import PostgresStore
from autokey.domain.model.ids import KeyId, OrderId
from autokey.domain.model.keys import PoolCounts
from autokey.domain.model.orders import Order
from autokey.domain.model.webhooks import WebhookEvent, WebhookEventType, WebhookOutcome
from tests import builders as b

pytestmark = pytest.mark.postgres

BUYERS = 20
STOCK = 10


async def test_twenty_concurrent_claims_on_ten_keys_give_ten_distinct_keys_without_blocking(
    pg_store: PostgresStore,
) -> None:
    pool = b.pool()
    keys = [b.key(pool.id) for _ in range(STOCK)]
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new(keys)
    # Nobody commits until every buyer has claimed: a claim that waited on another
    # buyer's locked row (a key, or a counter row every claim updated: the key counts of
    # migration 0007 are appended, not updated) would never reach the barrier and the test
    # would time out.
    everyone_claimed = asyncio.Barrier(BUYERS)

    async def buy() -> tuple[OrderId, list[KeyId], int]:
        order_id = OrderId(b.new_uuid())
        async with pg_store.transaction() as tx:
            got = list(await tx.keys.claim(pool.id, order_id, 1, b.T0))
            available = await tx.keys.count_available(pool.id)
            await everyone_claimed.wait()
            await asyncio.sleep(0.05)
        return order_id, got, available

    async with asyncio.timeout(15):
        results = await asyncio.gather(*(buy() for _ in range(BUYERS)))

    winners = [(order_id, got) for order_id, got, _ in results if got]
    claimed = [key_id for _, got in winners for key_id in got]
    assert len(winners) == STOCK
    assert sorted(claimed) == sorted(k.id for k in keys)  # ten keys, each exactly once
    for _, got, available in results:
        # Before anyone committed, each buyer saw the stock minus only its own claim:
        # locked rows still count as available to others.
        assert available + len(got) == STOCK
    async with pg_store.transaction() as tx:
        assert await tx.keys.count_available(pool.id) == 0
        assert await tx.pools.counts(pool.id) == PoolCounts(reserved=STOCK)
        for order_id, got in winners:
            assert [k.id for k in await tx.keys.for_order(order_id)] == got


async def test_two_concurrent_sweepers_lock_disjoint_expired_orders(
    pg_store: PostgresStore,
) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    expired = [b.order(offer, b.seller(), ttl_s=60 + i) for i in range(6)]
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        for order in [*expired, b.order(offer, b.seller(), ttl_s=3600)]:
            await tx.orders.add(order)
    both_locked = asyncio.Barrier(2)
    later = b.T0 + timedelta(minutes=10)

    async def sweep() -> list[Order]:
        async with pg_store.transaction() as tx:
            mine = list(await tx.orders.lock_expired(later, limit=3))
            await both_locked.wait()
            await asyncio.sleep(0.05)
        return mine

    async with asyncio.timeout(15):
        first, second = await asyncio.gather(sweep(), sweep())

    first_ids, second_ids = {o.id for o in first}, {o.id for o in second}
    assert len(first_ids) == len(second_ids) == 3
    assert first_ids.isdisjoint(second_ids)
    assert first_ids | second_ids == {o.id for o in expired}


def _event(event_id: str, outcome: WebhookOutcome = WebhookOutcome.UNMATCHED) -> WebhookEvent:
    return WebhookEvent(
        event_id=event_id,
        type=WebhookEventType.ORDER_PAID,
        upstream_order_id="G2A-1",
        occurred_at=b.T0,
        received_at=b.T0 + timedelta(seconds=1),
        outcome=outcome,
        payload=b'{"event_id":"%s"}' % event_id.encode(),
    )


async def test_twenty_concurrent_deliveries_record_one_nonce_and_one_event(
    pg_store: PostgresStore,
) -> None:
    # Every transaction is open before anyone inserts, and the inserts overlap the first
    # writer's uncommitted rows: the others wait on it, then insert nothing.
    everyone_began = asyncio.Barrier(BUYERS)
    outcomes = list(WebhookOutcome)

    async def deliver(i: int) -> tuple[bool, bool]:
        async with pg_store.transaction() as tx:
            assert await tx.webhooks.get_event("evt_race") is None
            await everyone_began.wait()
            fresh_nonce = await tx.webhooks.remember_nonce("same", b.T0)
            fresh_event = await tx.webhooks.add_event(
                _event("evt_race", outcomes[i % len(outcomes)])
            )
            await asyncio.sleep(0.05)
            # A refused insert raised nothing and left the transaction usable; having
            # waited for the winner's commit, this read sees its event.
            assert await tx.webhooks.get_event("evt_race") is not None
        return fresh_nonce, fresh_event

    async with asyncio.timeout(15):
        results = await asyncio.gather(*(deliver(i) for i in range(BUYERS)))

    assert [nonce for nonce, _ in results].count(True) == 1
    assert [event for _, event in results].count(True) == 1
    winner = next(i for i, (_, event) in enumerate(results) if event)
    async with pg_store.transaction() as tx:
        assert await tx.webhooks.get_event("evt_race") == _event(
            "evt_race", outcomes[winner % len(outcomes)]
        )
        assert await tx.webhooks.remember_nonce("same", b.T0) is False
        assert await tx.webhooks.prune_nonces(b.T0 + timedelta(seconds=1)) == 1


async def test_a_nonce_whose_first_writer_rolls_back_goes_to_the_one_waiting(
    pg_store: PostgresStore,
) -> None:
    class Abandon(Exception):
        pass

    first_inserted, may_roll_back = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        with pytest.raises(Abandon):
            async with pg_store.transaction() as tx:
                assert await tx.webhooks.remember_nonce("n-rolled-back", b.T0) is True
                first_inserted.set()
                await may_roll_back.wait()
                raise Abandon

    async def second() -> bool:
        await first_inserted.wait()
        async with pg_store.transaction() as tx:
            return await tx.webhooks.remember_nonce("n-rolled-back", b.T0)

    async with asyncio.timeout(15):
        writer, waiter = asyncio.create_task(first()), asyncio.create_task(second())
        await first_inserted.wait()
        await asyncio.sleep(0.2)  # the second insert is now waiting on the first's row
        assert not waiter.done()
        may_roll_back.set()
        await writer
        assert await waiter is True


async def test_housekeeping_skips_a_claim_mark_a_release_holds_instead_of_waiting(
    pg_store: PostgresStore,
) -> None:
    pool = b.pool()
    keys = [b.key(pool.id) for _ in range(3)]
    order_id = OrderId(b.new_uuid())
    async with pg_store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.keys.add_new(keys)
        await tx.keys.claim(pool.id, order_id, 2, b.T0)
    async with pg_store.transaction() as tx:
        assert await tx.keys.advance_claim_marks() == 1  # the mark is the third key now
    async with pg_store.transaction() as releasing:
        # Releasing lowers (and so locks) the pool's mark until this transaction ends.
        assert len(await releasing.keys.release_order(order_id)) == 2
        async with asyncio.timeout(5), pg_store.transaction() as tx:
            assert await tx.keys.advance_claim_marks() == 0
    async with pg_store.transaction() as tx:
        claimed = await tx.keys.claim(pool.id, OrderId(b.new_uuid()), 1, b.T0)
    assert list(claimed) == [keys[0].id]  # the released keys come first again
