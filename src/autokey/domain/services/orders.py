"""Orders: reservation at creation, payment, atomic fulfillment, cancellation and expiry.

Each use case is a step over one unit of work (`*_in(tx, ...)`), so the HTTP edge can run it
inside the same transaction as its idempotency record; `transact` runs it standalone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import attrs

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import AutokeyError, OfferNotAvailable
from autokey.domain.model.ids import KeyId, OfferId, OrderId
from autokey.domain.model.keys import Key
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import (
    Fulfillment,
    Order,
    OrderStatus,
    SalesFilter,
    check_quantity,
)
from autokey.domain.model.outbound import OutboundEventType
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.services.audit import order_event
from autokey.domain.services.batching import LANES, GroupCommit, grouped
from autokey.domain.services.inventory import key_context
from autokey.domain.services.outbound import Notice, announce_to
from autokey.domain.services.transactions import transact
from autokey.ports.crypto import KeyCipher
from autokey.ports.payments import PaymentGateway
from autokey.ports.store import Store, UnitOfWork
from autokey.ports.system import Clock, IdGenerator

SWEEP_BATCH = 100
C = TypeVar("C")


@attrs.frozen(kw_only=True)
class DeliveredKey:
    id: KeyId
    plaintext: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class OrderView:
    order: Order
    keys: tuple[DeliveredKey, ...] = ()
    """Decrypted keys; only ever filled for a FULFILLED order shown to its buyer."""
    moved: bool = False
    """True when this call changed the order's status (for metrics, after commit)."""
    sourcing_required: bool = False
    """The order's key is bought upstream: nothing changed, and the caller runs
    `SourcingService.advance` after this transaction (it makes external calls between its
    own commits)."""


@attrs.frozen(kw_only=True)
class CreateCall:
    principal: Principal
    offer_id: OfferId
    quantity: int


@attrs.frozen(kw_only=True)
class OrderCall:
    principal: Principal
    order_id: OrderId


@attrs.frozen(kw_only=True)
class SettleCall(OrderCall):
    reference: str
    """Where the money was collected (see `settle_in`)."""


@attrs.frozen(kw_only=True)
class Sale:
    """A seller's view of one order: its metadata and the ids of the keys it delivered."""

    order: Order
    key_ids: tuple[KeyId, ...] = ()


class OrderService:
    def __init__(
        self,
        store: Store,
        cipher: KeyCipher,
        payments: PaymentGateway,
        clock: Clock,
        ids: IdGenerator,
        reservation_ttl_s: int,
        *,
        group_commit: bool = True,
        lanes: int = LANES,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        """`group_commit` batches `create`, `pay` and `fulfill`, up to `lanes` batches of a
        kind at once; `on_batch(call, size)` is told each batch's size as it starts."""
        self._store, self._cipher, self._payments = store, cipher, payments
        self._clock, self._ids = clock, ids
        self._ttl = timedelta(seconds=reservation_ttl_s)
        self._group_commit, self._lanes, self._on_batch = group_commit, lanes, on_batch
        self._creates = self._grouped(
            "create",
            lambda tx, c: self.create_in(tx, c.principal, c.offer_id, c.quantity),
            self.create_many_in,
        )
        self._pays = self._grouped(
            "pay", lambda tx, c: self.pay_in(tx, c.principal, c.order_id), self.pay_many_in
        )
        self._fulfills = self._grouped(
            "fulfill",
            lambda tx, c: self.fulfill_in(tx, c.principal, c.order_id),
            self.fulfill_many_in,
        )

    def _event(
        self,
        actor: Principal | None,
        action: AuditAction,
        order: Order,
        key_ids: Sequence[KeyId] = (),
        **details: str | int,
    ) -> AuditEvent:
        return order_event(
            self._ids, self._clock, action, order, actor=actor, key_ids=key_ids, details=details
        )

    async def _own_order(
        self, tx: UnitOfWork, principal: Principal, order_id: OrderId, *, lock: bool = False
    ) -> Order:
        return _owned_by(principal, await tx.orders.get(order_id, for_update=lock), order_id)

    async def create_in(
        self, tx: UnitOfWork, principal: Principal, offer_id: OfferId, quantity: int
    ) -> OrderView:
        """Reserve `quantity` keys all-or-nothing (a G2A offer's key is bought when the order
        is fulfilled). OutOfStock or StockBusy when too few could be claimed (`Order.shortfall`)."""
        principal.require(Role.BUYER, action="create_order")
        check_quantity(quantity)
        now = self._clock.now()
        offer = await tx.offers.get(offer_id)
        if offer is None:
            raise OfferNotAvailable(offer_id=str(offer_id))
        order = self._place(principal, offer, quantity, now)
        events = [self._event(principal, AuditAction.ORDER_CREATED, order)]
        if not order.sources_upstream:
            claimed = await tx.keys.claim(order.pool_id, order.id, quantity, now)
            if len(claimed) < quantity:
                unclaimed = await tx.keys.count_available(order.pool_id)
                raise order.shortfall(claimed=len(claimed), unclaimed=unclaimed)
            events.append(self._event(principal, AuditAction.KEYS_RESERVED, order, claimed))
        # A new id and no upstream id yet: queued with the audit rows, no round trip of its own.
        await tx.orders.add_many([order])
        await tx.audit.append(events)
        return OrderView(order=order, moved=True)

    def _place(self, principal: Principal, offer: Offer, quantity: int, now: datetime) -> Order:
        return Order.place(
            id=OrderId(self._ids.new_id()),
            buyer_id=principal.subject,
            offer=offer,
            quantity=quantity,
            now=now,
            reserved_until=now + self._ttl,
        )

    async def pay_in(self, tx: UnitOfWork, principal: Principal, order_id: OrderId) -> OrderView:
        """PENDING -> PAID through the payment gateway."""
        order = await self._own_order(tx, principal, order_id, lock=True)
        order.pay(self._clock.now())
        reference = await self._payments.charge(order)
        await tx.orders.save_many([order])  # locked above: saved without a round trip
        await tx.audit.append(
            [self._event(principal, AuditAction.ORDER_PAID, order, payment=reference)]
        )
        return OrderView(order=order, moved=True)

    async def fulfill_in(
        self, tx: UnitOfWork, principal: Principal, order_id: OrderId
    ) -> OrderView:
        """PAID -> FULFILLED, delivering the reserved keys, as `Order.request_fulfillment`
        decides: the same keys again for a FULFILLED order; a view that says
        `sourcing_required` for a key bought upstream. OrderNotPaid for PENDING or CANCELED."""
        order = await self._own_order(tx, principal, order_id, lock=True)
        now = self._clock.now()
        step = order.request_fulfillment(now)
        if step is Fulfillment.SOURCE:
            return OrderView(order=order, sourcing_required=True)
        delivers = step is Fulfillment.DELIVER
        keys = await (self._deliver(tx, order, now) if delivers else tx.keys.for_order(order.id))
        events = self._delivery_events(principal, order, keys) if delivers else []
        await tx.audit.append([*events, self._revealed(principal, order, keys)])
        return attrs.evolve(self._opened(order, keys), moved=delivers)

    async def _deliver(self, tx: UnitOfWork, order: Order, now: datetime) -> Sequence[Key]:
        """The order's reserved keys, delivered (read back by the statement that delivers),
        the order saved and the delivery announced to the seller's webhooks."""
        keys, endpoints = await tx.together(  # one round trip on PostgreSQL
            tx.keys.deliver_order(order.id, now), tx.endpoints.list_for_sellers({order.seller_id})
        )
        await tx.orders.save_many([order])  # locked by the caller: saved without a round trip
        await announce_to(tx, self._ids, self._clock, [_fulfilled(order, keys)], endpoints)
        return keys

    def _delivery_events(
        self, principal: Principal, order: Order, keys: Sequence[Key]
    ) -> list[AuditEvent]:
        return [
            self._event(principal, AuditAction.KEYS_DELIVERED, order, [k.id for k in keys]),
            self._event(principal, AuditAction.ORDER_FULFILLED, order),
        ]

    async def settle_in(
        self, tx: UnitOfWork, principal: Principal, order_id: OrderId, reference: str
    ) -> OrderView:
        """PENDING -> PAID -> FULFILLED for an order paid outside autokey (G2A collected the
        money; `reference` records where), delivering its reserved keys."""
        order = await self._own_order(tx, principal, order_id, lock=True)
        order.pay(self._clock.now())
        await tx.orders.save(order)
        await tx.audit.append(
            [self._event(principal, AuditAction.ORDER_PAID, order, payment=reference)]
        )
        return await self.fulfill_in(tx, principal, order_id)

    async def extend_in(
        self, tx: UnitOfWork, principal: Principal, order_id: OrderId, until: datetime
    ) -> Order:
        """Hold a PENDING order's keys until `until` (see `Order.extend`)."""
        order = await self._own_order(tx, principal, order_id, lock=True)
        order.extend(until, self._clock.now())
        await tx.orders.save(order)
        return order

    async def _reveal(
        self, tx: UnitOfWork, principal: Principal, order: Order, keys: Sequence[Key]
    ) -> OrderView:
        """The order with its `keys` opened, the reveal audited."""
        view = self._opened(order, keys)
        await tx.audit.append([self._revealed(principal, order, keys)])
        return view

    def _opened(self, order: Order, keys: Sequence[Key]) -> OrderView:
        return OrderView(
            order=order,
            keys=tuple(
                DeliveredKey(
                    id=k.id,
                    plaintext=self._cipher.open(k.sealed, context=key_context(k.pool_id, k.id)),
                )
                for k in keys
            ),
        )

    def _revealed(self, principal: Principal, order: Order, keys: Sequence[Key]) -> AuditEvent:
        return self._event(principal, AuditAction.KEYS_REVEALED, order, [k.id for k in keys])

    async def cancel_in(
        self,
        tx: UnitOfWork,
        principal: Principal,
        order_id: OrderId,
        reason: str = "canceled_by_buyer",
    ) -> OrderView:
        """PENDING -> CANCELED and its keys back to AVAILABLE; canceling twice is a no-op."""
        order = await self._own_order(tx, principal, order_id, lock=True)
        moved = order.status is not OrderStatus.CANCELED
        if moved:
            await self._cancel(tx, principal, order, reason, AuditAction.ORDER_CANCELED)
        return OrderView(order=order, moved=moved)

    async def _cancel(
        self,
        tx: UnitOfWork,
        actor: Principal | None,
        order: Order,
        reason: str,
        action: AuditAction,
    ) -> None:
        order.cancel(self._clock.now(), reason)
        released = await tx.keys.release_order(order.id)
        await tx.orders.save(order)
        await tx.audit.append(
            [
                self._event(actor, action, order),
                self._event(actor, AuditAction.KEYS_RELEASED, order, released),
            ]
        )

    # --- Group commit (ADR 0032) -----------------------------------------------------------
    # `create`, `pay` and `fulfill` run a call in a batch with the calls of its kind waiting
    # at the same moment (`GroupCommit`); `*_many_in` are the batches' steps. Each order is
    # all or nothing, and a call a batch cannot complete as `*_in` would runs alone.

    async def create(self, principal: Principal, offer_id: OfferId, quantity: int) -> OrderView:
        call = CreateCall(principal=principal, offer_id=offer_id, quantity=quantity)
        return await self._creates.run(call)

    async def pay(self, principal: Principal, order_id: OrderId) -> OrderView:
        return await self._pays.run(OrderCall(principal=principal, order_id=order_id))

    async def fulfill(self, principal: Principal, order_id: OrderId) -> OrderView:
        return await self._fulfills.run(OrderCall(principal=principal, order_id=order_id))

    def _grouped(
        self,
        name: str,
        one: Callable[[UnitOfWork, C], Awaitable[OrderView]],
        many: Callable[[UnitOfWork, Sequence[C]], Awaitable[list[OrderView | None]]],
    ) -> GroupCommit[C, OrderView]:
        on_batch = self._on_batch
        return grouped(
            self._store,
            one,
            many,
            enabled=self._group_commit,
            lanes=self._lanes,
            observe=None if on_batch is None else lambda size: on_batch(name, size),
        )

    async def create_many_in(
        self,
        tx: UnitOfWork,
        calls: Sequence[CreateCall],
        offers: Mapping[OfferId, Offer] | None = None,
    ) -> list[OrderView | None]:
        """`create_in` for a batch, with one claim for all of it. A call that would not succeed
        as `create_in` (an error to report, a G2A offer, stock short or busy) is None. The
        calls' `offers`, when the caller has read them in `tx` already, are not read again."""
        now = self._clock.now()
        if offers is None:
            offers = await tx.offers.get_many({c.offer_id for c in calls})
        placed = self._placed_many(calls, offers, now)
        wants = [(o.id, o.pool_id, o.quantity) for o in placed.values()]
        claimed = await tx.keys.claim_many(wants, now) if wants else {}
        created = {i: o for i, o in placed.items() if o.id in claimed}
        await tx.orders.add_many(list(created.values()))
        await tx.audit.append(
            [
                event
                for i, o in created.items()
                for event in (
                    self._event(calls[i].principal, AuditAction.ORDER_CREATED, o),
                    self._event(calls[i].principal, AuditAction.KEYS_RESERVED, o, claimed[o.id]),
                )
            ]
        )
        return [
            OrderView(order=created[i], moved=True) if i in created else None
            for i in range(len(calls))
        ]

    def _placed_many(
        self, calls: Sequence[CreateCall], offers: Mapping[OfferId, Offer], now: datetime
    ) -> dict[int, Order]:
        """The orders `calls` place (by call), leaving out the calls that would fail and
        those of G2A offers."""
        placed: dict[int, Order] = {}
        for i, c in enumerate(calls):
            offer = offers.get(c.offer_id)
            if offer is None or offer.sources_upstream:
                continue
            with contextlib.suppress(AutokeyError):
                c.principal.require(Role.BUYER, action="create_order")
                placed[i] = self._place(c.principal, offer, check_quantity(c.quantity), now)
        return placed

    async def pay_many_in(
        self, tx: UnitOfWork, calls: Sequence[OrderCall]
    ) -> list[OrderView | None]:
        """`pay_in` for a batch; a call that would not succeed as `pay_in` is None."""
        now = self._clock.now()
        orders = await tx.orders.get_many({c.order_id for c in calls}, for_update=True)
        paid: dict[int, tuple[Order, str]] = {}
        for i, order in _owned(calls, orders).items():
            with contextlib.suppress(AutokeyError):
                order.pay(now)
                paid[i] = (order, await self._payments.charge(order))
        await tx.orders.save_many([order for order, _ in paid.values()])
        await tx.audit.append(
            [
                self._event(calls[i].principal, AuditAction.ORDER_PAID, order, payment=reference)
                for i, (order, reference) in paid.items()
            ]
        )
        return [
            OrderView(order=paid[i][0], moved=True) if i in paid else None
            for i in range(len(calls))
        ]

    async def fulfill_many_in(
        self, tx: UnitOfWork, calls: Sequence[OrderCall]
    ) -> list[OrderView | None]:
        """`fulfill_in` for a batch of first deliveries; any other call (an error to report,
        keys delivered before, a key bought upstream) is None."""
        orders = await tx.orders.get_many({c.order_id for c in calls}, for_update=True)
        return await self._deliver_many(tx, calls, _owned(calls, orders), self._clock.now())

    async def settle_many_in(
        self, tx: UnitOfWork, calls: Sequence[SettleCall]
    ) -> list[OrderView | None]:
        """`settle_in` for a batch; a call that would not succeed as `settle_in` is None."""
        now = self._clock.now()
        orders = await tx.orders.get_many({c.order_id for c in calls}, for_update=True)
        paid: dict[int, Order] = {}
        for i, order in _owned(calls, orders).items():
            with contextlib.suppress(AutokeyError):
                order.pay(now)
                paid[i] = order
        return await self._deliver_many(tx, calls, paid, now)

    async def _deliver_many(
        self,
        tx: UnitOfWork,
        calls: Sequence[OrderCall],
        owned: Mapping[int, Order],
        now: datetime,
    ) -> list[OrderView | None]:
        """Deliver the reserved keys of the `owned` orders (by call) that `fulfill_in` would
        deliver now, each call's order paid first when it is a `SettleCall`."""
        ready = {i: o for i, o in owned.items() if _delivers(o, now)}
        if not ready:
            return [None] * len(calls)
        keys, endpoints = await tx.together(  # one round trip on PostgreSQL
            tx.keys.deliver_orders([o.id for o in ready.values()], now),
            tx.endpoints.list_for_sellers({o.seller_id for o in ready.values()}),
        )
        await tx.orders.save_many(list(ready.values()))
        views = {i: self._opened(o, keys.get(o.id, ())) for i, o in ready.items()}
        events: list[AuditEvent] = []
        for i, o in ready.items():
            call, delivered = calls[i], keys.get(o.id, ())
            if isinstance(call, SettleCall):
                events.append(
                    self._event(call.principal, AuditAction.ORDER_PAID, o, payment=call.reference)
                )
            events += self._delivery_events(call.principal, o, delivered)
            events.append(self._revealed(call.principal, o, delivered))
        await tx.audit.append(events)
        notices = [_fulfilled(o, keys.get(o.id, ())) for o in ready.values()]
        await announce_to(tx, self._ids, self._clock, notices, endpoints)
        return [
            attrs.evolve(views[i], moved=True) if i in views else None for i in range(len(calls))
        ]

    async def get(self, principal: Principal, order_id: OrderId) -> OrderView:
        """The buyer's order; a FULFILLED one with its keys (each reveal is audited)."""

        async def step(tx: UnitOfWork) -> OrderView:
            order = await self._own_order(tx, principal, order_id)
            if order.status is OrderStatus.FULFILLED:
                return await self._reveal(tx, principal, order, await tx.keys.for_order(order.id))
            return OrderView(order=order)

        return await transact(self._store, step)

    async def list_for_buyer(
        self, principal: Principal, status: OrderStatus | None, page: PageRequest
    ) -> Page[Order]:
        principal.require(Role.BUYER, action="list_orders")
        async with self._store.transaction() as tx:
            return await tx.orders.list_for_buyer(principal.subject, status, page)

    async def list_sales(
        self, principal: Principal, which: SalesFilter, page: PageRequest
    ) -> Page[Sale]:
        """The seller's orders across offers, newest first, with the ids (never the
        plaintext) of the keys each delivered."""
        principal.require(Role.SELLER, action="list_sales")
        async with self._store.transaction() as tx:
            orders = await tx.orders.list_for_seller(principal.subject, which, page)
            delivered = await tx.keys.delivered_to([o.id for o in orders.items])
        sales = [Sale(order=o, key_ids=tuple(delivered.get(o.id, ()))) for o in orders.items]
        return Page(items=sales, next_after=orders.next_after)

    async def sweep_expired(self) -> int:
        """Cancel PENDING orders whose reservation ended and free their keys. Safe to run in
        several processes at once: each takes only orders no other sweeper holds."""
        total = 0
        while True:
            async with self._store.transaction() as tx:
                expired = await tx.orders.lock_expired(self._clock.now(), SWEEP_BATCH)
                for order in expired:
                    await self._cancel(
                        tx, None, order, "reservation_expired", AuditAction.ORDER_EXPIRED
                    )
            total += len(expired)
            if len(expired) < SWEEP_BATCH:
                return total


def _owned_by(principal: Principal, order: Order | None, order_id: OrderId) -> Order:
    principal.require(Role.BUYER, action="manage_orders")
    return principal.must_own(order, "order", order_id)


def _owned(calls: Sequence[OrderCall], orders: Mapping[OrderId, Order]) -> dict[int, Order]:
    """By call, the order `_own_order` would give the call; only for the first call naming
    an order (a repeat runs alone, after it)."""
    owned: dict[int, Order] = {}
    named: set[OrderId] = set()
    for i, call in enumerate(calls):
        if call.order_id in named:
            continue
        named.add(call.order_id)
        with contextlib.suppress(AutokeyError):
            owned[i] = _owned_by(call.principal, orders.get(call.order_id), call.order_id)
    return owned


def _delivers(order: Order, now: datetime) -> bool:
    """Whether `fulfill_in` would deliver the order's reserved keys now (moving it on)."""
    try:
        return order.request_fulfillment(now) is Fulfillment.DELIVER
    except AutokeyError:
        return False


def _fulfilled(order: Order, keys: Sequence[Key]) -> Notice:
    data = {"orderId": order.id, "offerId": order.offer_id, "keyIds": [k.id for k in keys]}
    return order.seller_id, OutboundEventType.ORDER_FULFILLED, data
