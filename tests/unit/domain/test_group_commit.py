"""Group commit (ADR 0032): the batching itself, and the order use cases run in batches, where
one call's failure never fails its neighbours."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager

import pytest

from autokey.adapters.crypto import AesGcmKeyCipher
from autokey.adapters.memory.store import MemoryOfferRepository, MemoryStore
from autokey.adapters.payments import SimulatedPaymentGateway
from autokey.adapters.system import Uuid7Ids
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import (
    Forbidden,
    IllegalTransition,
    NotFound,
    OfferNotAvailable,
    OutOfStock,
    StoreFault,
    StoreUnavailable,
)
from autokey.domain.model.ids import OfferId, OrderId, SubjectId
from autokey.domain.model.keys import KeyStatus
from autokey.domain.model.orders import OrderStatus
from autokey.domain.model.pages import PageRequest
from autokey.domain.services.batching import GroupCommit
from autokey.domain.services.orders import CreateCall, OrderCall, OrderService, OrderView
from autokey.ports.store import UnitOfWork
from tests import builders as b
from tests.conftest import MASTER_KEY, FakeClock


class _Calls:
    """A `together` and an `alone` that record what they were given."""

    def __init__(self, fail_batches: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.alone: list[int] = []
        self.fail_batches = fail_batches
        self.begun = asyncio.Event()
        """Set once the first batch is in its transaction."""
        self.second_begun = asyncio.Event()

    async def together(self, calls: Sequence[int]) -> list[str | None]:
        self.batches.append(list(calls))
        self.begun.set()
        if len(self.batches) == 2:
            self.second_begun.set()
        await asyncio.sleep(0.01)  # a transaction in flight: later calls queue up
        if self.fail_batches and len(calls) > 1:
            raise StoreFault(store="test")
        if calls[0] == 99:
            raise StoreUnavailable(store="test")
        if calls == [13]:
            raise ValueError("a lone call's own error")
        return [None if c < 0 else f"batched {c}" for c in calls]

    async def run_alone(self, call: int) -> str:
        self.alone.append(call)
        return f"alone {call}"


async def test_under_load_calls_made_in_the_same_pass_of_the_loop_share_a_batch() -> None:
    calls = _Calls()
    group = GroupCommit(calls.together, calls.run_alone, lanes=1)
    await asyncio.gather(group.run(1), group.run(2))  # a batch with company: a busy server
    first = asyncio.create_task(group.run(3))
    await asyncio.sleep(0)  # the call is waiting; its batch has not begun
    rest = [asyncio.create_task(group.run(c)) for c in (4, 5)]
    assert await asyncio.gather(first, *rest) == ["batched 3", "batched 4", "batched 5"]
    assert calls.batches == [[1, 2], [3, 4, 5]]


async def test_a_lone_call_on_a_quiet_server_starts_at_once() -> None:
    calls = _Calls()
    group = GroupCommit(calls.together, calls.run_alone, lanes=1)
    first = asyncio.create_task(group.run(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(group.run(c)) for c in (2, 3)]
    assert await asyncio.gather(first, *rest) == ["batched 1", "batched 2", "batched 3"]
    assert calls.batches == [[1], [2, 3]]


async def test_calls_arriving_while_a_batch_runs_share_the_next_batch() -> None:
    calls, sizes = _Calls(), []
    group = GroupCommit(calls.together, calls.run_alone, lanes=1, observe=sizes.append)
    first = asyncio.create_task(group.run(1))
    await calls.begun.wait()
    rest = [asyncio.create_task(group.run(c)) for c in (2, 3, -4, 5)]
    results = await asyncio.gather(first, *rest)
    assert calls.batches == [[1], [2, 3, -4, 5]]
    assert sizes == [1, 4]
    assert results == ["batched 1", "batched 2", "batched 3", "alone -4", "batched 5"]
    assert calls.alone == [-4]


async def test_a_second_lane_starts_a_batch_while_the_first_is_in_flight() -> None:
    calls = _Calls()
    group = GroupCommit(calls.together, calls.run_alone, lanes=2)
    first = asyncio.create_task(group.run(1))
    await calls.begun.wait()
    second = asyncio.create_task(group.run(2))
    await calls.second_begun.wait()
    assert not first.done()  # the second batch began while the first was in flight
    rest = [asyncio.create_task(group.run(c)) for c in (3, 4, 5)]  # both lanes busy
    results = await asyncio.gather(first, second, *rest)
    assert calls.batches == [[1], [2], [3, 4, 5]]
    assert results == [f"batched {c}" for c in range(1, 6)]
    assert await group.run(6) == "batched 6"  # lanes that finished leave room for new ones


async def test_a_batch_is_at_most_the_limit() -> None:
    calls = _Calls()
    group = GroupCommit(calls.together, calls.run_alone, limit=3, lanes=1)
    results = await asyncio.gather(*(group.run(c) for c in range(1, 8)))
    assert [len(batch) for batch in calls.batches] == [3, 3, 1]
    assert results == [f"batched {c}" for c in range(1, 8)]


async def test_a_failing_batch_runs_each_of_its_calls_alone() -> None:
    calls = _Calls(fail_batches=True)
    group = GroupCommit(calls.together, calls.run_alone)
    results = await asyncio.gather(*(group.run(c) for c in (1, 2, 3)))
    assert results == ["alone 1", "alone 2", "alone 3"]
    assert sorted(calls.alone) == [1, 2, 3]


async def test_a_shared_error_is_every_calls_answer_without_running_them_alone() -> None:
    calls = _Calls()
    group = GroupCommit(calls.together, calls.run_alone, shared=(StoreUnavailable,))
    first = asyncio.create_task(group.run(1))
    await calls.begun.wait()
    outcomes = await asyncio.gather(
        first, group.run(99), group.run(2), group.run(3), return_exceptions=True
    )
    assert outcomes[0] == "batched 1"
    assert [type(o) for o in outcomes[1:]] == [StoreUnavailable] * 3
    assert calls.alone == []


async def test_a_lone_call_gets_its_own_error() -> None:
    calls = _Calls()
    group = GroupCommit(calls.together, calls.run_alone)
    with pytest.raises(ValueError, match="own error"):
        await group.run(13)
    assert calls.alone == []
    assert await group.run(14) == "batched 14"  # the group still works


async def test_a_caller_gone_before_its_batch_began_is_left_out() -> None:
    calls = _Calls()
    group = GroupCommit(calls.together, calls.run_alone)
    first = asyncio.create_task(group.run(1))
    await calls.begun.wait()
    gone, stays = asyncio.create_task(group.run(2)), asyncio.create_task(group.run(3))
    await asyncio.sleep(0)
    gone.cancel()
    assert await asyncio.gather(first, stays) == ["batched 1", "batched 3"]
    assert calls.batches == [[1], [3]]


async def test_disabled_every_call_runs_alone_at_once() -> None:
    calls = _Calls()
    group = GroupCommit(calls.together, calls.run_alone, enabled=False)
    assert await asyncio.gather(group.run(1), group.run(2)) == ["alone 1", "alone 2"]
    assert calls.batches == []


# --- The order use cases in batches ---------------------------------------------------------


class _Shop:
    """A memory store with a seller's offer on a pool of `keys` keys, and the order service."""

    def __init__(self, keys: int, store: MemoryStore | None = None) -> None:
        self.store, self.clock = store or MemoryStore(), FakeClock(b.T0)
        self.orders = OrderService(
            self.store,
            AesGcmKeyCipher([MASTER_KEY]),
            SimulatedPaymentGateway(),
            self.clock,
            Uuid7Ids(),
            reservation_ttl_s=900,
            on_batch=lambda call, size: self.sizes.append((call, size)),
        )
        self.sizes: list[tuple[str, int]] = []
        self.seller = b.seller()
        self.pool = b.pool(self.seller)
        self.offer = b.offer(self.seller, self.pool.id)
        self.keys = [b.key(self.pool.id) for _ in range(keys)]

    async def open(self) -> _Shop:
        async with self.store.transaction() as tx:
            await tx.pools.add(self.pool)
            await tx.keys.add_new(self.keys)
            await tx.offers.add(self.offer)
        return self

    async def batch(self, step: str, calls: Sequence[object]) -> list[OrderView | None]:
        async with self.store.transaction() as tx:
            many = getattr(self.orders, f"{step}_many_in")
            views: list[OrderView | None] = await many(tx, calls)
            return views

    async def key_statuses(self) -> dict[OrderId | None, list[KeyStatus]]:
        async with self.store.transaction() as tx:
            found = [await tx.keys.get(k.id) for k in self.keys]
        held: dict[OrderId | None, list[KeyStatus]] = {}
        for key in found:
            assert key is not None
            held.setdefault(key.order_id, []).append(key.status)
        return held


def _buyer() -> Principal:
    return Principal(subject=SubjectId(uuid.uuid4()), role=Role.BUYER)


async def test_a_create_batch_leaves_out_the_calls_that_would_fail_and_creates_the_rest() -> None:
    shop = await _Shop(keys=4).open()
    buyers = [_buyer() for _ in range(3)]
    seller = Principal(subject=shop.seller, role=Role.SELLER)
    calls = [
        CreateCall(principal=buyers[0], offer_id=shop.offer.id, quantity=2),
        CreateCall(principal=buyers[1], offer_id=OfferId(b.new_uuid()), quantity=1),  # unknown
        CreateCall(principal=seller, offer_id=shop.offer.id, quantity=1),  # not a buyer
        CreateCall(principal=buyers[1], offer_id=shop.offer.id, quantity=0),  # out of range
        CreateCall(principal=buyers[2], offer_id=shop.offer.id, quantity=1),
        CreateCall(principal=buyers[1], offer_id=shop.offer.id, quantity=2),  # one key left
    ]
    views = await shop.batch("create", calls)
    assert [v is not None for v in views] == [True, False, False, False, True, False]
    created = [v.order for v in views if v is not None]
    assert [(o.buyer_id, o.quantity, o.status) for o in created] == [
        (buyers[0].subject, 2, OrderStatus.PENDING),
        (buyers[2].subject, 1, OrderStatus.PENDING),
    ]
    held = await shop.key_statuses()
    assert held == {
        created[0].id: [KeyStatus.RESERVED] * 2,
        created[1].id: [KeyStatus.RESERVED],
        None: [KeyStatus.AVAILABLE],
    }
    async with shop.store.transaction() as tx:
        stored = await tx.orders.get_many([o.id for o in created])
        events = await tx.audit.list_events(shop.pool.id, PageRequest(limit=50))
    assert stored == {o.id: o for o in created}
    assert sorted(e.action.value for e in events.items) == sorted(
        ["order.created", "keys.reserved"] * 2
    )


async def test_a_create_batch_given_its_offers_reads_no_offer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = await _Shop(keys=2).open()
    reads: list[object] = []
    real = MemoryOfferRepository.get_many

    async def counted(self: MemoryOfferRepository, offer_ids: Collection[OfferId]) -> object:
        reads.append(offer_ids)
        return await real(self, offer_ids)

    monkeypatch.setattr(MemoryOfferRepository, "get_many", counted)
    calls = [CreateCall(principal=_buyer(), offer_id=shop.offer.id, quantity=1)] * 2
    async with shop.store.transaction() as tx:
        given = await shop.orders.create_many_in(tx, calls, {shop.offer.id: shop.offer})
    assert (reads, [v is not None for v in given]) == ([], [True, True])
    await shop.batch("create", calls[:1])  # out of stock now, but the offer is read
    assert len(reads) == 1


async def test_pay_and_fulfill_batches_leave_out_foreign_unpayable_and_repeated_calls() -> None:
    shop = await _Shop(keys=3).open()
    owner, stranger = _buyer(), _buyer()
    made = await shop.batch(
        "create", [CreateCall(principal=owner, offer_id=shop.offer.id, quantity=1)] * 3
    )
    first, second, third = (v.order.id for v in made if v is not None)
    paid = await shop.batch(
        "pay",
        [
            OrderCall(principal=owner, order_id=first),
            OrderCall(principal=stranger, order_id=second),  # not theirs
            OrderCall(principal=owner, order_id=third),
            OrderCall(principal=owner, order_id=third),  # the same order again: runs alone
            OrderCall(principal=owner, order_id=OrderId(b.new_uuid())),  # unknown
        ],
    )
    assert [v is not None for v in paid] == [True, False, True, False, False]
    assert {v.order.status for v in paid if v is not None} == {OrderStatus.PAID}
    done = await shop.batch(
        "fulfill",
        [
            OrderCall(principal=owner, order_id=second),  # not paid
            OrderCall(principal=owner, order_id=first),
            OrderCall(principal=stranger, order_id=third),  # not theirs
        ],
    )
    assert [v is not None for v in done] == [False, True, False]
    delivered = done[1]
    assert delivered is not None
    assert delivered.order.status is OrderStatus.FULFILLED
    assert [k.plaintext for k in delivered.keys] == [f"KEY-{k.id.hex}" for k in delivered.keys]
    held = await shop.key_statuses()
    assert held[first] == [KeyStatus.DELIVERED]
    assert held[second] == held[third] == [KeyStatus.RESERVED]


async def test_concurrent_calls_batch_and_each_failing_call_gets_its_own_error() -> None:
    shop = await _Shop(keys=5).open()
    buyers = [_buyer() for _ in range(6)]
    seller = Principal(subject=shop.seller, role=Role.SELLER)
    outcomes = await asyncio.gather(
        *(shop.orders.create(buyer, shop.offer.id, 1) for buyer in buyers),
        shop.orders.create(buyers[0], OfferId(b.new_uuid()), 1),
        shop.orders.create(seller, shop.offer.id, 1),
        return_exceptions=True,
    )
    created = [o for o in outcomes[:6] if isinstance(o, OrderView)]
    assert len(created) == 5
    assert [type(o) for o in outcomes if not isinstance(o, OrderView)] == [
        OutOfStock,
        OfferNotAvailable,
        Forbidden,
    ]
    paid = await asyncio.gather(
        *(shop.orders.pay(_owner(buyers, v), v.order.id) for v in created),
        shop.orders.pay(_buyer(), created[0].order.id),  # not theirs
        return_exceptions=True,
    )
    assert [type(p) for p in paid] == [OrderView] * 5 + [NotFound]
    fulfilled = await asyncio.gather(
        *(shop.orders.fulfill(_owner(buyers, v), v.order.id) for v in created),
        shop.orders.pay(_owner(buyers, created[0]), created[0].order.id),  # paid already
        return_exceptions=True,
    )
    assert [type(f) for f in fulfilled] == [OrderView] * 5 + [IllegalTransition]
    keys = [k.plaintext for f in fulfilled[:5] if isinstance(f, OrderView) for k in f.keys]
    assert sorted(keys) == sorted(f"KEY-{k.id.hex}" for k in shop.keys)
    assert sorted(shop.sizes) == [("create", 8), ("fulfill", 5), ("pay", 1), ("pay", 6)]


def _owner(buyers: list[Principal], view: OrderView) -> Principal:
    return next(b for b in buyers if b.subject == view.order.buyer_id)


class _Flaky(MemoryStore):
    """A memory store whose next `failures` transactions that deliver several orders at once
    fail as a whole, as a statement the database refuses would fail a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    @asynccontextmanager
    async def transaction(self, *, optimistic: bool = False) -> AsyncIterator[UnitOfWork]:
        async with super().transaction() as tx:
            if self.failures:
                deliver_orders = tx.keys.deliver_orders

                async def failing(order_ids: object, now: object) -> object:
                    if len(list(order_ids)) > 1:  # type: ignore[call-overload]
                        self.failures -= 1
                        raise StoreFault(store="memory")
                    return await deliver_orders(order_ids, now)  # type: ignore[arg-type]

                tx.keys.deliver_orders = failing  # type: ignore[method-assign,assignment]
            yield tx


async def test_a_batch_failing_as_a_whole_is_rolled_back_and_each_call_runs_alone() -> None:
    flaky = _Flaky()
    shop = await _Shop(keys=3, store=flaky).open()
    buyer = _buyer()
    created = await asyncio.gather(*(shop.orders.create(buyer, shop.offer.id, 1) for _ in range(3)))
    await asyncio.gather(*(shop.orders.pay(buyer, v.order.id) for v in created))
    flaky.failures = 1
    done = await asyncio.gather(*(shop.orders.fulfill(buyer, v.order.id) for v in created))
    assert flaky.failures == 0  # the batch did fail
    assert [d.order.status for d in done] == [OrderStatus.FULFILLED] * 3
    assert sorted(k.id for d in done for k in d.keys) == sorted(k.id for k in shop.keys)
    assert set(await shop.key_statuses()) == {v.order.id for v in created}


async def test_fulfilling_again_in_a_batch_returns_the_same_keys() -> None:
    shop = await _Shop(keys=2).open()
    buyer = _buyer()
    created = await asyncio.gather(*(shop.orders.create(buyer, shop.offer.id, 1) for _ in range(2)))
    await asyncio.gather(*(shop.orders.pay(buyer, v.order.id) for v in created))
    first = await asyncio.gather(*(shop.orders.fulfill(buyer, v.order.id) for v in created))
    again = await asyncio.gather(*(shop.orders.fulfill(buyer, v.order.id) for v in created))
    assert [v.keys for v in again] == [v.keys for v in first]
    assert [v.moved for v in first] == [True, True]
    assert [v.moved for v in again] == [False, False]


def test_a_group_outlives_a_runner_closed_with_batches_in_flight() -> None:
    calls = _Calls()
    group = GroupCommit(calls.together, calls.run_alone, lanes=2)
    with asyncio.Runner() as first:
        loop = first.get_loop()
        tasks = [loop.create_task(group.run(1))]
        first.run(asyncio.sleep(0.001))  # the batch is in `together`, asleep
        tasks.append(loop.create_task(group.run(2)))
        first.run(asyncio.sleep(0.001))  # so is the second lane's
        tasks += [loop.create_task(group.run(c)) for c in (3, 4)]  # waiting for a lane
        first.run(asyncio.sleep(0))
        assert calls.batches == [[1], [2]]
    # Closing cancelled the batches, their callers and the calls waiting; the next loop
    # starts afresh.
    assert all(task.cancelled() for task in tasks)
    with asyncio.Runner() as second:
        assert second.run(group.run(2)) == "batched 2"
