"""Hypothesis state machines over the real use cases, run on every store.

After every step the store must agree with a simple model: counts per status, the sum of
statuses equals the keys stored, no fingerprint twice, every order holds exactly its keys.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndex
from autokey.adapters.memory.store import MemoryStore
from autokey.adapters.payments import SimulatedPaymentGateway
from autokey.adapters.system import Uuid7Ids
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import DomainError, OutOfStock
from autokey.domain.model.ids import OrderId, PoolId, SubjectId
from autokey.domain.model.keys import KeyStatus, PoolCounts
from autokey.domain.model.offers import DeliveryType, Money, OfferDraft
from autokey.domain.model.orders import OrderStatus
from autokey.domain.model.pages import PageRequest
from autokey.domain.services.inventory import InventoryService
from autokey.domain.services.offers import OfferService
from autokey.domain.services.orders import OrderService
from autokey.domain.services.transactions import transact
from autokey.ports.store import Store
from tests.conftest import MASTER_KEY, FakeClock
from tests.services import scratch_postgres

TTL_S = 600
StoreFactory = Callable[[], AbstractAsyncContextManager[Store]]


@asynccontextmanager
async def _memory() -> AsyncIterator[Store]:
    yield MemoryStore()


def _factories(kind: str, tmp_path: Path, pg_url: str | None) -> StoreFactory:
    @asynccontextmanager
    async def sqlite() -> AsyncIterator[Store]:
        from autokey.adapters.sqlite.store import SqliteStore

        store = await SqliteStore.open(tmp_path / f"{uuid.uuid4().hex}.db")
        await store.migrate()
        try:
            yield store
        finally:
            await store.close()

    @asynccontextmanager
    async def postgres() -> AsyncIterator[Store]:
        from autokey.adapters.postgres.store import PostgresStore

        assert pg_url is not None
        store = await PostgresStore.open(pg_url, min_size=1, max_size=2)
        try:
            yield store
        finally:
            await store.close()

    return {"memory": _memory, "sqlite": sqlite, "postgres": postgres}[kind]


class _Machine(RuleBasedStateMachine):
    """Shared plumbing: a private event loop, one store, the services, a seller and a pool."""

    factory: StoreFactory

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self._store_cm = type(self).factory()
        self.store = self.run(self._store_cm.__aenter__())
        self.clock, ids = FakeClock(), Uuid7Ids()
        cipher, index = AesGcmKeyCipher([MASTER_KEY]), HmacBlindIndex(MASTER_KEY)
        self.inventory = InventoryService(self.store, cipher, index, self.clock, ids, batch_size=3)
        self.offers = OfferService(self.store, self.clock, ids)
        self.orders = OrderService(
            self.store, cipher, SimulatedPaymentGateway(), self.clock, ids, reservation_ttl_s=TTL_S
        )
        self.seller = Principal(subject=SubjectId(uuid.uuid4()), role=Role.SELLER)
        self.pool_id = self.run(self.inventory.create_pool(self.seller, "machine")).pool.id
        self.prefix = uuid.uuid4().hex[:8]  # keys unique across examples sharing a database
        self.made = 0
        self.model = PoolCounts()

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def teardown(self) -> None:
        self.run(self._store_cm.__aexit__(None, None, None))
        self.loop.close()

    def fresh_key(self) -> str:
        self.made += 1
        return f"{self.prefix}-KEY-{self.made:05d}"

    def upload(self, texts: list[str]) -> Any:
        report, counts = self.run(
            self.inventory.upload(self.seller, self.pool_id, enumerate(texts, 1))
        )
        return report, counts

    def bump(self, **delta: int) -> None:
        fields = {
            f: getattr(self.model, f) + delta.get(f, 0)
            for f in ("available", "reserved", "delivered", "invalid")
        }
        self.model = PoolCounts(**fields)

    def all_keys(self) -> list[Any]:
        async def fetch() -> list[Any]:
            async with self.store.transaction() as tx:
                page = await tx.keys.list_in_pool(
                    PoolId(self.pool_id), None, PageRequest(limit=500)
                )
                return list(page.items)

        return self.run(fetch())  # type: ignore[no-any-return]

    @rule()
    def housekeeping_folds_counts_and_moves_claim_marks(self) -> None:
        self.run(self.inventory.housekeeping())

    async def _available(self) -> int:
        async with self.store.transaction() as tx:
            return (await tx.pools.available_counts([PoolId(self.pool_id)]))[self.pool_id]

    @invariant()
    def counts_match_the_model_and_add_up(self) -> None:
        view = self.run(self.inventory.get_pool(self.seller, self.pool_id))
        assert view.counts == self.model
        assert self.run(self._available()) == self.model.available
        keys = self.all_keys()
        assert len(keys) == view.counts.total
        assert len({k.fingerprint for k in keys}) == len(keys)


class PoolMachine(_Machine):
    known: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.known = []

    @rule(fresh=st.integers(0, 4), repeats=st.integers(0, 2), invalid=st.integers(0, 2))
    def upload_mixed(self, fresh: int, repeats: int, invalid: int) -> None:
        new = [self.fresh_key() for _ in range(fresh)]
        again = self.known[:repeats]
        texts = new + new[:1] + again + ["bad"] * invalid + [" "]
        report, _ = self.upload(texts)
        assert report.added == len(new)
        assert report.duplicates == len(again) + (1 if new else 0)
        assert report.invalid == invalid
        self.known += new
        self.bump(available=len(new))

    @precondition(lambda self: self.model.available > 0)
    @rule(pick=st.integers(0, 100))
    def invalidate(self, pick: int) -> None:
        available = [k for k in self.all_keys() if k.status is KeyStatus.AVAILABLE]
        key = available[pick % len(available)]
        self.run(self.inventory.invalidate_key(self.seller, self.pool_id, key.id))
        self.bump(available=-1, invalid=1)


class OrderMachine(_Machine):
    def __init__(self) -> None:
        super().__init__()
        self.buyers = [
            Principal(subject=SubjectId(uuid.uuid4()), role=Role.BUYER) for _ in range(3)
        ]
        draft = OfferDraft(
            id=None,
            title="Game",
            price=Money.parse("5", "EUR"),
            delivery_type=DeliveryType.AUTO_KEY,
            key_pool_id=self.pool_id,
        )
        self.offer_id = self.run(self.offers.save_draft(self.seller, draft)).offer.id
        self.run(
            self.offers.set_status(
                self.seller,
                self.offer_id,
                __import__(
                    "autokey.domain.model.offers", fromlist=["OfferStatus"]
                ).OfferStatus.ACTIVE,
            )
        )
        self.placed: dict[OrderId, tuple[Principal, int]] = {}
        self.status: dict[OrderId, OrderStatus] = {}

    def _step(self, buyer: Principal, method: str, order_id: OrderId) -> Any:
        return self.run(
            transact(self.store, lambda tx: getattr(self.orders, method)(tx, buyer, order_id))
        )

    @rule(count=st.integers(1, 3))
    def upload(self, count: int) -> None:
        self.upload_keys([self.fresh_key() for _ in range(count)])

    def upload_keys(self, texts: list[str]) -> None:
        report, _ = super().upload(texts)
        assert report.added == len(texts)
        self.bump(available=len(texts))

    @rule(buyer=st.integers(0, 2), quantity=st.integers(1, 3))
    def create(self, buyer: int, quantity: int) -> None:
        who = self.buyers[buyer]
        try:
            view = self.run(
                transact(
                    self.store, lambda tx: self.orders.create_in(tx, who, self.offer_id, quantity)
                )
            )
        except OutOfStock:
            assert self.model.available < quantity
            return
        assert self.model.available >= quantity
        self.placed[view.order.id] = (who, quantity)
        self.status[view.order.id] = OrderStatus.PENDING
        self.bump(available=-quantity, reserved=quantity)

    def _pick(self, pick: int) -> OrderId:
        ids = sorted(self.placed)
        return ids[pick % len(ids)]

    @precondition(lambda self: self.placed)
    @rule(pick=st.integers(0, 100))
    def pay(self, pick: int) -> None:
        order_id = self._pick(pick)
        ok = self.status[order_id] is OrderStatus.PENDING
        self._attempt(order_id, "pay_in", ok, OrderStatus.PAID)

    @precondition(lambda self: self.placed)
    @rule(pick=st.integers(0, 100))
    def fulfill(self, pick: int) -> None:
        order_id = self._pick(pick)
        before = self.status[order_id]
        ok = before in (OrderStatus.PAID, OrderStatus.FULFILLED)
        view = self._attempt(order_id, "fulfill_in", ok, OrderStatus.FULFILLED)
        if view is not None:
            assert len(view.keys) == self.placed[order_id][1]
            if before is OrderStatus.PAID:
                quantity = self.placed[order_id][1]
                self.bump(reserved=-quantity, delivered=quantity)

    @precondition(lambda self: self.placed)
    @rule(pick=st.integers(0, 100))
    def cancel(self, pick: int) -> None:
        order_id = self._pick(pick)
        before = self.status[order_id]
        ok = before in (OrderStatus.PENDING, OrderStatus.CANCELED)
        self._attempt(order_id, "cancel_in", ok, OrderStatus.CANCELED)
        if ok and before is OrderStatus.PENDING:
            quantity = self.placed[order_id][1]
            self.bump(available=quantity, reserved=-quantity)

    def _attempt(self, order_id: OrderId, method: str, ok: bool, after: OrderStatus) -> Any:
        who = self.placed[order_id][0]
        try:
            view = self._step(who, method, order_id)
        except DomainError:
            assert not ok, f"{method} refused for {self.status[order_id]}"
            return None
        assert ok, f"{method} allowed for {self.status[order_id]}"
        self.status[order_id] = after
        return view

    @rule(
        creates=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), max_size=4),
        calls=st.lists(
            st.tuples(st.sampled_from(["pay", "fulfill"]), st.integers(0, 100), st.booleans()),
            max_size=4,
        ),
    )
    def calls_at_the_same_moment(
        self, creates: list[tuple[int, int]], calls: list[tuple[str, int, bool]]
    ) -> None:
        """Creates, payments and fulfillments at once, through group commit, some by a
        buyer who does not own the order: each call ends as it would alone."""
        targets: dict[OrderId, tuple[str, bool]] = {}
        for method, pick, stranger in calls:
            if self.placed:
                targets.setdefault(self._pick(pick), (method, stranger))
        outsider = Principal(subject=SubjectId(uuid.uuid4()), role=Role.BUYER)

        async def at_once() -> list[Any]:
            runs = [self.orders.create(self.buyers[b], self.offer_id, q) for b, q in creates]
            runs += [
                getattr(self.orders, method)(outsider if stranger else self.placed[o][0], o)
                for o, (method, stranger) in targets.items()
            ]
            return await asyncio.gather(*runs, return_exceptions=True)

        results = self.run(at_once())
        for (buyer, quantity), result in zip(creates, results, strict=False):
            if isinstance(result, OutOfStock):
                continue
            assert not isinstance(result, BaseException), result
            self.placed[result.order.id] = (self.buyers[buyer], quantity)
            self.status[result.order.id] = OrderStatus.PENDING
            self.bump(available=-quantity, reserved=quantity)
        assert self.model.available >= 0
        for (order_id, (method, stranger)), result in zip(
            targets.items(), results[len(creates) :], strict=True
        ):
            self._settle(order_id, method, stranger, result)

    def _settle(self, order_id: OrderId, method: str, stranger: bool, result: Any) -> None:
        before, quantity = self.status[order_id], self.placed[order_id][1]
        allowed = (
            (OrderStatus.PENDING,) if method == "pay" else (OrderStatus.PAID, OrderStatus.FULFILLED)
        )
        if stranger or before not in allowed:
            assert isinstance(result, DomainError), (method, before, result)
            return
        assert not isinstance(result, BaseException), (method, before, result)
        self.status[order_id] = OrderStatus.PAID if method == "pay" else OrderStatus.FULFILLED
        if method == "fulfill":
            assert len(result.keys) == quantity
            if before is OrderStatus.PAID:
                self.bump(reserved=-quantity, delivered=quantity)

    @rule()
    def expire_reservations(self) -> None:
        self.clock.advance(TTL_S + 1)
        swept = self.run(self.orders.sweep_expired())
        pending = [o for o, s in self.status.items() if s is OrderStatus.PENDING]
        # The sweeper is global: a database shared across examples may hold older orders.
        assert swept >= len(pending)
        for order_id in pending:
            stored = self.run(self.orders.get(self.placed[order_id][0], order_id)).order
            assert (stored.status, stored.cancel_reason) == (
                OrderStatus.CANCELED,
                "reservation_expired",
            )
            self.status[order_id] = OrderStatus.CANCELED
            quantity = self.placed[order_id][1]
            self.bump(available=quantity, reserved=-quantity)

    @precondition(lambda self: self.model.available > 0)
    @rule(pick=st.integers(0, 100))
    def invalidate(self, pick: int) -> None:
        available = [k for k in self.all_keys() if k.status is KeyStatus.AVAILABLE]
        key = available[pick % len(available)]
        self.run(self.inventory.invalidate_key(self.seller, self.pool_id, key.id))
        self.bump(available=-1, invalid=1)

    @invariant()
    def every_order_holds_exactly_its_keys(self) -> None:
        by_order: dict[OrderId, list[KeyStatus]] = {}
        for key in self.all_keys():
            if key.order_id is not None:
                by_order.setdefault(key.order_id, []).append(key.status)
        for order_id, status in self.status.items():
            quantity = self.placed[order_id][1]
            expected = {
                OrderStatus.PENDING: [KeyStatus.RESERVED] * quantity,
                OrderStatus.PAID: [KeyStatus.RESERVED] * quantity,
                OrderStatus.FULFILLED: [KeyStatus.DELIVERED] * quantity,
                OrderStatus.CANCELED: [],
            }[status]
            assert by_order.get(order_id, []) == expected, (status, by_order.get(order_id))


STORES = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


async def _database(kind: str) -> AsyncIterator[str | None]:
    if kind == "postgres":
        async with scratch_postgres() as url:
            from autokey.adapters.postgres.store import PostgresStore

            store = await PostgresStore.open(url)
            await store.migrate()
            await store.close()
            yield url
    else:
        yield None


def _run(
    machine: type[_Machine], kind: str, tmp_path: Path, url: str | None, examples: int
) -> None:
    machine.factory = staticmethod(_factories(kind, tmp_path, url))  # type: ignore[assignment]
    run_state_machine_as_test(
        machine, settings=settings(max_examples=examples, stateful_step_count=25, deadline=None)
    )


@pytest.mark.parametrize("kind", STORES)
def test_pool_state_machine(kind: str, tmp_path: Path) -> None:
    _with_database(kind, lambda url: _run(PoolMachine, kind, tmp_path, url, 25))


@pytest.mark.parametrize("kind", STORES)
def test_order_state_machine(kind: str, tmp_path: Path) -> None:
    _with_database(kind, lambda url: _run(OrderMachine, kind, tmp_path, url, 30))


def _with_database(kind: str, body: Callable[[str | None], None]) -> None:
    loop = asyncio.new_event_loop()
    gen = _database(kind)
    try:
        url = loop.run_until_complete(anext(gen))
        body(url)
    finally:
        loop.run_until_complete(gen.aclose())
        loop.close()
