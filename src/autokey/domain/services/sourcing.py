"""Fulfilling G2A offers: buy the key upstream, at most once per order, and deliver it.

Every step is recorded before the next external call, so a crash anywhere resumes from the
last recorded state (`advance` is called again by the buyer, a webhook or the resumer):

    PAID --(record REQUESTED)--> create upstream order --(record CREATED + id)-->
    pay (unless details say paid) --(record PAID)--> download key --(seal + deliver, same
    transaction as the order's FULFILLED)--> done

A REQUESTED order without an upstream id after `stuck_after_s` means the create call may or
may not have reached G2A; it is never retried (no second purchase) and is logged for an
operator instead.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.errors import NotFound, UpstreamNotFound, UpstreamRejected
from autokey.domain.model.ids import KeyId, OrderId
from autokey.domain.model.keys import Key, KeyStatus
from autokey.domain.model.marketplace import MarketplaceErrorCode, MarketplaceOrderStatus
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import Order, OrderStatus, UpstreamState
from autokey.domain.services.audit import order_event
from autokey.domain.services.inventory import key_context
from autokey.ports.crypto import BlindIndex, KeyCipher
from autokey.ports.marketplace import MarketplaceClient
from autokey.ports.store import Store, UnitOfWork
from autokey.ports.system import Clock, IdGenerator

log = structlog.get_logger("autokey.sourcing")
RESUME_BATCH = 20


class SourcingService:
    def __init__(
        self,
        store: Store,
        marketplace: MarketplaceClient | None,
        cipher: KeyCipher,
        blind_index: BlindIndex,
        clock: Clock,
        ids: IdGenerator,
        stuck_after_s: float = 120.0,
    ) -> None:
        self._store, self._marketplace = store, marketplace
        self._cipher, self._index, self._clock, self._ids = cipher, blind_index, clock, ids
        self._stuck_after = timedelta(seconds=stuck_after_s)

    async def advance(self, order_id: OrderId) -> Order:
        """Take a paid G2A order as far as it can go now; returns it FULFILLING or FULFILLED.
        Idempotent and safe to call concurrently: one upstream order per local order."""
        market = self._marketplace
        if market is None:
            raise UpstreamNotFound(upstream="g2a", operation="not_configured")
        order, offer, fresh = await self._begin(order_id)
        if order.status is not OrderStatus.FULFILLING:
            return order
        if order.upstream_state is UpstreamState.REQUESTED:
            if not fresh:  # another call created it, or died not knowing whether it did
                if self._clock.now() - order.updated_at >= self._stuck_after:
                    log.error("g2a.order_create_outcome_unknown", order_id=str(order.id))
                return order
            order = await self._create_upstream(market, order, offer)
        if order.upstream_state is UpstreamState.CREATED:
            order = await self._pay_upstream(market, order)
        if order.upstream_state in (UpstreamState.PAID, UpstreamState.COMPLETE):
            return await self._deliver(order.id)
        return order

    async def _create_upstream(
        self, market: MarketplaceClient, order: Order, offer: Offer
    ) -> Order:
        """The G2A order of `order` (CREATED), or FAILED when G2A refuses it."""
        try:
            upstream = await market.create_order(
                offer.g2a_product_id or "",
                offer.max_price.amount if offer.max_price else None,
                offer.max_price.currency if offer.max_price else None,
            )
        except (UpstreamRejected, UpstreamNotFound) as refused:
            log.warning("g2a.order_refused", order_id=str(order.id), code=refused.code)
            return await self._record(order.id, UpstreamState.FAILED)
        log.info("g2a.order_created", order_id=str(order.id), g2a_order=upstream.order_id)
        return await self._record(order.id, UpstreamState.CREATED, upstream.order_id)

    async def _pay_upstream(self, market: MarketplaceClient, order: Order) -> Order:
        """Pay the G2A order unless G2A already has it paid; PAID."""
        upstream_id = order.upstream_order_id or ""
        details = await market.order_details(upstream_id)
        if details.known_status not in (
            MarketplaceOrderStatus.PAID,
            MarketplaceOrderStatus.COMPLETE,
        ):
            await market.pay_order(upstream_id)
        return await self._record(order.id, UpstreamState.PAID)

    async def _begin(self, order_id: OrderId) -> tuple[Order, Offer, bool]:
        async with self._store.transaction() as tx:
            order = await tx.orders.get(order_id, for_update=True)
            offer = None if order is None else await tx.offers.get(order.offer_id)
            if order is None or offer is None:
                raise NotFound(resource="order", id=str(order_id))
            fresh = order.status is OrderStatus.PAID
            if fresh:
                order.start_sourcing(self._clock.now())
                await tx.orders.save(order)
            return order, offer, fresh

    async def _record(
        self, order_id: OrderId, state: UpstreamState, upstream_id: str | None = None
    ) -> Order:
        async with self._store.transaction() as tx:
            order = await self._locked(tx, order_id)
            if order.record_upstream(state, self._clock.now(), upstream_id):
                await tx.orders.save(order)
            return order

    async def _deliver(self, order_id: OrderId) -> Order:
        """Download the key inside the transaction that stores it, so the once-only download
        and the order's FULFILLED commit together (the row lock keeps others out)."""
        assert self._marketplace is not None
        async with self._store.transaction() as tx:
            order = await self._locked(tx, order_id)
            if order.status is OrderStatus.FULFILLED:
                return order
            try:
                plaintext = await self._marketplace.order_key(order.upstream_order_id or "")
            except UpstreamRejected as not_ready:
                if not_ready.code != MarketplaceErrorCode.KEY_NOT_READY:
                    raise
                return order
            now = self._clock.now()
            key, events = await self._store_bought_key(tx, order, plaintext)
            key.reserve(order.id, now)
            key.deliver(now)
            await tx.keys.save(key)
            order.record_upstream(UpstreamState.COMPLETE, now)
            order.fulfill(now)
            await tx.orders.save(order)
            delivered = self._event(AuditAction.KEYS_DELIVERED, order, (key.id,), source="g2a")
            await tx.audit.append([*events, delivered])
            log.info("g2a.key_delivered", order_id=str(order.id))
            return order

    async def _store_bought_key(
        self, tx: UnitOfWork, order: Order, plaintext: str
    ) -> tuple[Key, list[AuditEvent]]:
        """Store the key bought for `order` in its pool. A plaintext stored already is kept
        anyway, as a duplicate: we paid for it and the buyer gets it; the collision is logged
        and audited for an operator (both keys named), never a reason to drop the key."""
        key_id = KeyId(self._ids.new_id())
        key = Key(
            id=key_id,
            pool_id=order.pool_id,
            status=KeyStatus.AVAILABLE,
            sealed=self._cipher.seal(plaintext, context=key_context(order.pool_id, key_id)),
            fingerprint=self._index.fingerprint(plaintext),
            created_at=self._clock.now(),
        )
        if await tx.keys.add_new([key]):
            return key, []
        original = await tx.keys.find_by_fingerprint(key.fingerprint)
        key.keep_as_duplicate()
        await tx.keys.add_new([key])
        both = (key_id,) if original is None else (key_id, original.id)
        log.error(
            "g2a.key_duplicate_bought",
            order_id=str(order.id),
            key_id=str(key_id),
            duplicate_of=None if original is None else str(original.id),
            duplicate_status=None if original is None else original.status.value,
        )
        return key, [self._event(AuditAction.KEY_DUPLICATE_BOUGHT, order, both, source="g2a")]

    def _event(
        self, action: AuditAction, order: Order, key_ids: tuple[KeyId, ...], **details: str
    ) -> AuditEvent:
        return order_event(self._ids, self._clock, action, order, key_ids=key_ids, details=details)

    async def _locked(self, tx: UnitOfWork, order_id: OrderId) -> Order:
        order = await tx.orders.get(order_id, for_update=True)
        if order is None:
            raise NotFound(resource="order", id=str(order_id))
        return order

    async def resume(self) -> int:
        """Advance every FULFILLING order once (the polling half of delivery)."""
        async with self._store.transaction() as tx:
            waiting = await tx.orders.list_fulfilling(RESUME_BATCH)
        done = 0
        for order in waiting:
            if (await self.advance(order.id)).status is OrderStatus.FULFILLED:
                done += 1
        return done
