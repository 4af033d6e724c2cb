"""Contract of the store ports for offers, orders, idempotency records and the audit log."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.idempotency import IdempotencyRecord, IdempotencyState, StoredResponse
from autokey.domain.model.ids import EventId, KeyId, OrderId
from autokey.domain.model.merchant import G2A_CUSTOMER, Channel
from autokey.domain.model.offers import MAX_AMOUNT_DIGITS, Money, OfferStatus
from autokey.domain.model.orders import MAX_QUANTITY, OrderStatus, SalesFilter
from autokey.domain.model.pages import MAX_PAGE_SIZE, PageRequest
from autokey.ports.store import Store
from tests import builders as b


async def test_offer_round_trips_and_saves_changes(store: Store) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id, OfferStatus.DRAFT)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
    async with store.transaction() as tx:
        assert await tx.offers.get(offer.id) == offer
        offer.set_status(OfferStatus.ACTIVE, b.T0 + timedelta(seconds=1))
        offer.title = "Renamed"
        await tx.offers.save(offer)
    async with store.transaction() as tx:
        assert await tx.offers.get(offer.id) == offer
        assert await tx.offers.get(b.offer(owner, None).id) is None


async def test_offers_are_listed_per_seller(store: Store) -> None:
    owner = b.seller()
    mine = [b.offer(owner, None) for _ in range(3)]
    async with store.transaction() as tx:
        for o in [*mine, b.offer(b.seller(), None)]:
            await tx.offers.add(o)
    async with store.transaction() as tx:
        page = await tx.offers.list_for_seller(owner, PageRequest(limit=10))
    assert [o.id for o in page.items] == [o.id for o in mine]


async def test_order_round_trips_and_lists_newest_first_per_buyer(store: Store) -> None:
    owner, buyer = b.seller(), b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    orders = [b.order(offer, buyer) for _ in range(4)]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        for o in [*orders, b.order(offer, b.seller())]:
            await tx.orders.add(o)
        orders[1].pay(b.T0)
        await tx.orders.save(orders[1])
    async with store.transaction() as tx:
        assert await tx.orders.get(orders[1].id, for_update=True) == orders[1]
        page = await tx.orders.list_for_buyer(buyer, None, PageRequest(limit=3))
        assert [o.id for o in page.items] == [o.id for o in reversed(orders[1:])]
        rest = await tx.orders.list_for_buyer(buyer, None, PageRequest(after=page.next_after))
        assert [o.id for o in rest.items] == [orders[0].id]
        paid = await tx.orders.list_for_buyer(buyer, OrderStatus.PAID, PageRequest())
        assert [o.id for o in paid.items] == [orders[1].id]


async def test_sales_list_a_sellers_orders_newest_first_with_every_filter(store: Store) -> None:
    owner, buyer = b.seller(), b.seller()
    pool = b.pool(owner)
    first, second = b.offer(owner, pool.id), b.offer(owner, pool.id)
    orders = [
        attrs.evolve(b.order(o, buyer), created_at=b.T0 + timedelta(hours=i))
        for i, o in enumerate([first, second, first, second])
    ]
    orders[2].pay(b.T0)
    foreign = b.offer(b.seller(), pool.id)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        for o in (first, second, foreign):
            await tx.offers.add(o)
        for order in [*orders, b.order(foreign, buyer)]:
            await tx.orders.add(order)

    async def ids(which: SalesFilter, page: PageRequest | None = None) -> list[OrderId]:
        async with store.transaction() as tx:
            found = await tx.orders.list_for_seller(owner, which, page or PageRequest())
        return [o.id for o in found.items]

    newest_first = [o.id for o in reversed(orders)]
    assert await ids(SalesFilter()) == newest_first
    assert await ids(SalesFilter(offer_id=first.id)) == [orders[2].id, orders[0].id]
    assert await ids(SalesFilter(status=OrderStatus.PAID)) == [orders[2].id]
    hour = timedelta(hours=1)
    assert await ids(SalesFilter(since=b.T0 + hour, until=b.T0 + 3 * hour)) == [
        orders[2].id,
        orders[1].id,
    ]
    async with store.transaction() as tx:
        page = await tx.orders.list_for_seller(owner, SalesFilter(), PageRequest(limit=3))
    assert [o.id for o in page.items] == newest_first[:3]
    assert await ids(SalesFilter(), PageRequest(after=page.next_after)) == newest_first[3:]


G2A_ONLY, API_ONLY = SalesFilter(channel=Channel.G2A), SalesFilter(channel=Channel.API)


async def test_sales_filter_by_channel(store: Store) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    by_api, by_g2a = b.order(offer, b.seller()), b.order(offer, G2A_CUSTOMER)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.orders.add(by_api)
        await tx.orders.add(by_g2a)
    async with store.transaction() as tx:
        g2a = await tx.orders.list_for_seller(
            owner, SalesFilter(channel=Channel.G2A), PageRequest()
        )
        api = await tx.orders.list_for_seller(
            owner, SalesFilter(channel=Channel.API), PageRequest()
        )
    assert [o.id for o in g2a.items] == [by_g2a.id]
    assert [o.id for o in api.items] == [by_api.id]
    assert G2A_ONLY.matches(by_g2a)
    assert not G2A_ONLY.matches(by_api)


async def test_delivered_to_names_only_delivered_keys_per_order(store: Store) -> None:
    owner, buyer = b.seller(), b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    delivered, reserved = b.order(offer, buyer, quantity=2), b.order(offer, buyer)
    keys = [b.key(pool.id) for _ in range(4)]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.keys.add_new(keys)
        for order in (delivered, reserved):
            await tx.orders.add(order)
        got = await tx.keys.claim(pool.id, delivered.id, 2, b.T0)
        await tx.keys.claim(pool.id, reserved.id, 1, b.T0)
        await tx.keys.deliver_order(delivered.id, b.T0)
    async with store.transaction() as tx:
        found = await tx.keys.delivered_to([delivered.id, reserved.id, b.order(offer, buyer).id])
    assert dict(found) == {delivered.id: sorted(got)}


async def test_lock_expired_returns_pending_orders_past_their_reservation(store: Store) -> None:
    owner, buyer = b.seller(), b.seller()
    pool = b.pool(owner)
    offer = b.offer(owner, pool.id)
    short, long_, paid = (
        b.order(offer, buyer, ttl_s=60),
        b.order(offer, buyer),
        b.order(offer, buyer, ttl_s=60),
    )
    paid.pay(b.T0)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        for o in (short, long_, paid):
            await tx.orders.add(o)
    async with store.transaction() as tx:
        expired = await tx.orders.lock_expired(b.T0 + timedelta(seconds=120), limit=10)
        assert [o.id for o in expired] == [short.id]
        assert await tx.orders.lock_expired(b.T0, limit=10) == []


def _record(key: str = "k1") -> IdempotencyRecord:
    return IdempotencyRecord(
        scope="buyer:1:POST /orders",
        key=key,
        fingerprint=b"\x01" * 32,
        state=IdempotencyState.IN_FLIGHT,
        created_at=b.T0,
        locked_until=b.T0 + timedelta(seconds=60),
        expires_at=b.T0 + timedelta(hours=24),
    )


async def test_idempotency_insert_is_first_wins_and_complete_stores_the_response(
    store: Store,
) -> None:
    record = _record()
    async with store.transaction() as tx:
        assert await tx.idempotency.insert(record) is True
        assert await tx.idempotency.insert(attrs.evolve(record, fingerprint=b"x" * 32)) is False
    response = StoredResponse(status=201, body=b'{"id": "1"}')
    async with store.transaction() as tx:
        assert await tx.idempotency.complete(record, response) is True
    async with store.transaction() as tx:
        stored = await tx.idempotency.get(record.scope, record.key, for_update=True)
    assert stored == attrs.evolve(record, state=IdempotencyState.COMPLETED, response=response)


async def test_idempotency_replace_release_and_purge(store: Store) -> None:
    old, fresh = _record("old"), _record("fresh")
    async with store.transaction() as tx:
        await tx.idempotency.insert(old)
        await tx.idempotency.insert(fresh)
        taken_over = attrs.evolve(fresh, locked_until=b.T0 + timedelta(minutes=5))
        await tx.idempotency.replace(taken_over)
    async with store.transaction() as tx:
        assert await tx.idempotency.get(fresh.scope, fresh.key) == taken_over
        await tx.idempotency.release(fresh)  # no longer the holder: nothing happens
        assert await tx.idempotency.get(fresh.scope, fresh.key) == taken_over
        await tx.idempotency.release(taken_over)
        assert await tx.idempotency.get(fresh.scope, fresh.key) is None
        assert await tx.idempotency.purge_expired(b.T0 + timedelta(hours=25)) == 1
        assert await tx.idempotency.get(old.scope, old.key) is None


async def test_idempotency_complete_refuses_a_claim_that_was_taken_over(store: Store) -> None:
    first = _record()
    later = attrs.evolve(first, locked_until=first.locked_until + timedelta(microseconds=1))
    response = StoredResponse(status=201, body=b"{}")
    async with store.transaction() as tx:
        await tx.idempotency.insert(first)
        await tx.idempotency.replace(later)
    async with store.transaction() as tx:
        assert await tx.idempotency.complete(first, response) is False
        assert await tx.idempotency.get(first.scope, first.key) == later
        assert await tx.idempotency.complete(later, response) is True
        assert await tx.idempotency.complete(later, response) is False  # completed already


async def test_audit_events_append_and_list_per_pool(store: Store) -> None:
    pool, other = b.pool(), b.pool()
    key = b.key(pool.id)

    def event(pool_id: object, action: AuditAction) -> AuditEvent:
        return AuditEvent(
            id=EventId(b.new_uuid()),
            occurred_at=b.T0,
            action=action,
            actor=pool.seller_id,
            pool_id=pool_id,  # type: ignore[arg-type]
            key_ids=(key.id,),
            details={"count": 1, "reason": "test"},
        )

    second = b.key(pool.id)
    events = [  # one key, none, two: appended together
        event(pool.id, AuditAction.KEYS_UPLOADED),
        attrs.evolve(event(other.id, AuditAction.KEY_INVALIDATED), key_ids=()),
        attrs.evolve(event(pool.id, AuditAction.KEYS_REVEALED), key_ids=(key.id, second.id)),
    ]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.pools.add(other)
        await tx.audit.append(events)
    async with store.transaction() as tx:
        mine = await tx.audit.list_events(pool.id, PageRequest(limit=10))
        assert list(mine.items) == [events[0], events[2]]
        first = await tx.audit.list_events(None, PageRequest(limit=2))
        assert list(first.items) == events[:2]
        assert first.next_after == events[1].id


async def test_a_long_append_stores_every_event_in_order(store: Store) -> None:
    pool = b.pool()
    events = [  # more than one statement's worth on PostgreSQL (500 events a statement)
        AuditEvent(
            id=EventId(b.new_uuid()),
            occurred_at=b.T0,
            action=AuditAction.KEYS_REVEALED,
            actor=pool.seller_id,
            pool_id=pool.id,
            key_ids=(KeyId(b.new_uuid()),),
            details={"n": n},
        )
        for n in range(1_201)
    ]
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.audit.append(events)
    stored: list[AuditEvent] = []
    page = PageRequest(limit=MAX_PAGE_SIZE)
    async with store.transaction() as tx:
        while True:
            found = await tx.audit.list_events(pool.id, page)
            stored += found.items
            if found.next_after is None:
                break
            page = PageRequest(limit=MAX_PAGE_SIZE, after=found.next_after)
    assert stored == events


@pytest.mark.parametrize(
    ("unit", "quantity", "total"),
    [
        (
            Money(amount=Decimal("12345678901234567890123456.7891"), currency="EUR"),
            3,
            "37037036703703703670370370.3673",
        ),
        (
            Money.parse("9" * MAX_AMOUNT_DIGITS + ".999", "KWD"),
            MAX_QUANTITY,
            str(Decimal("9" * MAX_AMOUNT_DIGITS + ".999") * MAX_QUANTITY),
        ),
    ],
    ids=["beyond-28-digits", "largest-accepted-price"],
)
async def test_prices_and_order_totals_come_back_exactly(
    store: Store, unit: Money, quantity: int, total: str
) -> None:
    owner = b.seller()
    pool = b.pool(owner)
    offer = attrs.evolve(b.offer(owner, pool.id), price=unit)
    order = b.order(offer, b.seller(), quantity=quantity)
    async with store.transaction() as tx:
        await tx.pools.add(pool)
        await tx.offers.add(offer)
        await tx.orders.add(order)
    async with store.transaction() as tx:
        stored_offer, stored_order = await tx.offers.get(offer.id), await tx.orders.get(order.id)
    assert stored_offer is not None
    assert stored_order is not None
    assert (stored_offer.price, stored_order.unit_price) == (unit, unit)
    assert str(stored_order.total.amount) == total
