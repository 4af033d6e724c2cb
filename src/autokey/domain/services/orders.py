"""Orders: reservation at creation, payment, atomic fulfillment, cancellation and expiry.

Each use case is a step over one unit of work (`*_in(tx, ...)`), so the HTTP edge can run it
inside the same transaction as its idempotency record; `transact` runs it standalone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import OfferNotAvailable
from autokey.domain.model.ids import KeyId, OfferId, OrderId
from autokey.domain.model.keys import Key
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
from autokey.domain.services.inventory import key_context
from autokey.domain.services.outbound import announce
from autokey.domain.services.transactions import transact
from autokey.ports.crypto import KeyCipher
from autokey.ports.payments import PaymentGateway
from autokey.ports.store import Store, UnitOfWork
from autokey.ports.system import Clock, IdGenerator

SWEEP_BATCH = 100


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
    ) -> None:
        self._store, self._cipher, self._payments = store, cipher, payments
        self._clock, self._ids = clock, ids
        self._ttl = timedelta(seconds=reservation_ttl_s)

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
        principal.require(Role.BUYER, action="manage_orders")
        return principal.must_own(await tx.orders.get(order_id, for_update=lock), "order", order_id)

    async def create_in(
        self, tx: UnitOfWork, principal: Principal, offer_id: OfferId, quantity: int
    ) -> OrderView:
        """Reserve `quantity` keys all-or-nothing (a G2A offer's key is bought when the order
        is fulfilled). OutOfStock or StockBusy when too few could be claimed (`Order.shortfall`)."""
        principal.require(Role.BUYER, action="create_order")
        check_quantity(quantity)
        offer = await tx.offers.get(offer_id)
        if offer is None:
            raise OfferNotAvailable(offer_id=str(offer_id))
        now = self._clock.now()
        order = Order.place(
            id=OrderId(self._ids.new_id()),
            buyer_id=principal.subject,
            offer=offer,
            quantity=quantity,
            now=now,
            reserved_until=now + self._ttl,
        )
        await tx.orders.add(order)
        events = [self._event(principal, AuditAction.ORDER_CREATED, order)]
        if not offer.sources_upstream:
            claimed = await tx.keys.claim(order.pool_id, order.id, quantity, now)
            if len(claimed) < quantity:
                unclaimed = await tx.keys.count_available(order.pool_id)
                raise order.shortfall(claimed=len(claimed), unclaimed=unclaimed)
            events.append(self._event(principal, AuditAction.KEYS_RESERVED, order, claimed))
        await tx.audit.append(events)
        return OrderView(order=order, moved=True)

    async def pay_in(self, tx: UnitOfWork, principal: Principal, order_id: OrderId) -> OrderView:
        """PENDING -> PAID through the payment gateway."""
        order = await self._own_order(tx, principal, order_id, lock=True)
        order.pay(self._clock.now())
        reference = await self._payments.charge(order)
        await tx.orders.save(order)
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
        offer = await tx.offers.get(order.offer_id) if order.status is OrderStatus.PAID else None
        now = self._clock.now()
        upstream = offer is not None and offer.sources_upstream
        step = order.request_fulfillment(now, sourced_upstream=upstream)
        if step is Fulfillment.SOURCE:
            return OrderView(order=order, sourcing_required=True)
        if step is Fulfillment.DELIVER:
            keys = await self._deliver(tx, principal, order, now)
        else:
            keys = await tx.keys.for_order(order.id)
        view = await self._reveal(tx, principal, order, keys)
        return attrs.evolve(view, moved=step is Fulfillment.DELIVER)

    async def _deliver(
        self, tx: UnitOfWork, principal: Principal, order: Order, now: datetime
    ) -> Sequence[Key]:
        """The order's reserved keys, delivered (read back by the statement that delivers)."""
        keys = await tx.keys.deliver_order(order.id, now)
        delivered = [k.id for k in keys]
        await tx.orders.save(order)
        await tx.audit.append(
            [
                self._event(principal, AuditAction.KEYS_DELIVERED, order, delivered),
                self._event(principal, AuditAction.ORDER_FULFILLED, order),
            ]
        )
        await announce(
            tx,
            self._ids,
            self._clock,
            order.seller_id,
            OutboundEventType.ORDER_FULFILLED,
            {"orderId": order.id, "offerId": order.offer_id, "keyIds": delivered},
        )
        return keys

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
        revealed = tuple(
            DeliveredKey(
                id=k.id, plaintext=self._cipher.open(k.sealed, context=key_context(k.pool_id, k.id))
            )
            for k in keys
        )
        await tx.audit.append(
            [self._event(principal, AuditAction.KEYS_REVEALED, order, [k.id for k in keys])]
        )
        return OrderView(order=order, keys=revealed)

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
