"""The G2A merchant stock contract: G2A reserves keys of a seller's pool, orders them, reads
them again, returns some, and notifies. Reservations are ordinary orders (one per line)
bought by `G2A_CUSTOMER`, so claiming, expiry sweeping and the audit log are the order
machinery's own."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import AutokeyError, InvalidInput, NotFound, Unauthenticated
from autokey.domain.model.ids import EventId, KeyId, OfferId, OrderId, PoolId, SubjectId
from autokey.domain.model.merchant import (
    G2A_CUSTOMER,
    MAX_G2A_OFFER_ID,
    G2AOfferLink,
    MerchantAccessToken,
    MerchantCredential,
    MerchantNotification,
    NotificationType,
    Reservation,
    ReservationLine,
    ReservationState,
    ReturnedKey,
    inventory_size,
)
from autokey.domain.model.offers import DeliveryType, OfferStatus
from autokey.domain.model.orders import Order
from autokey.domain.model.pages import Page, PageRequest
from autokey.domain.services.auth import RevocationCache
from autokey.domain.services.batching import LANES, grouped
from autokey.domain.services.offers import linked_offer
from autokey.domain.services.orders import (
    CreateCall,
    DeliveredKey,
    OrderService,
    SettleCall,
)
from autokey.domain.services.transactions import transact
from autokey.ports.crypto import SecretHasher
from autokey.ports.store import RevocationWatch, Store, UnitOfWork
from autokey.ports.system import Clock, IdGenerator

ACCESS_TOKEN_LIFETIME_S = 3600
_G2A = Principal(subject=G2A_CUSTOMER, role=Role.BUYER)


@attrs.frozen(kw_only=True)
class ReserveItem:
    product_id: str
    quantity: int


@attrs.frozen(kw_only=True)
class ReserveCall:
    seller_id: SubjectId
    item: ReserveItem


@attrs.frozen(kw_only=True)
class OrderingCall:
    seller_id: SubjectId
    reservation_id: str
    g2a_order_id: int


@attrs.frozen(kw_only=True)
class Stock:
    """One product of a reservation or order: keys still available, and delivered keys."""

    product_id: str
    inventory_size: int
    keys: tuple[DeliveredKey, ...] = ()


@attrs.frozen(kw_only=True)
class ReservationView:
    reservation: Reservation
    stock: tuple[Stock, ...]


@attrs.frozen(kw_only=True)
class IssuedToken:
    access_token: str = attrs.field(repr=False)
    expires_in: int


@attrs.frozen(kw_only=True)
class NotificationIn:
    type: str
    date: str
    message: str
    auction_id: int | None
    g2a_offer_id: str | None


class MerchantService:
    def __init__(
        self,
        store: Store,
        orders: OrderService,
        hasher: SecretHasher,
        clock: Clock,
        ids: IdGenerator,
        reservation_ttl_s: int,
        *,
        group_commit: bool = True,
        lanes: int = LANES,
        on_batch: Callable[[str, int], None] | None = None,
        revocations: RevocationWatch | None = None,
    ) -> None:
        """`group_commit` batches one-item reservations and orders, up to `lanes` batches of
        a kind at once (ADR 0032); `on_batch(call, size)` is told each batch's size as it
        starts; with `revocations`, access tokens are cached."""
        self._store, self._orders, self._hasher = store, orders, hasher
        self._tokens = RevocationCache[MerchantAccessToken](revocations)
        self._clock, self._ids = clock, ids
        self._ttl = timedelta(seconds=reservation_ttl_s)
        self._reserves = grouped(
            store,
            lambda tx, c: self.reserve_in(tx, c.seller_id, [c.item]),
            self.reserve_many_in,
            enabled=group_commit,
            lanes=lanes,
            observe=None if on_batch is None else lambda size: on_batch("g2a_reserve", size),
        )
        self._orderings = grouped(
            store,
            lambda tx, c: self.order_in(tx, c.seller_id, c.reservation_id, c.g2a_order_id),
            self.order_many_in,
            enabled=group_commit,
            lanes=lanes,
            observe=None if on_batch is None else lambda size: on_batch("g2a_order", size),
        )

    # ---- credentials and tokens ----------------------------------------------------------

    async def create_credentials(
        self, seller_id: SubjectId, name: str = ""
    ) -> tuple[str, MerchantCredential]:
        """New client credentials for `seller_id`: the secret (shown once) and the record."""
        secret = self._hasher.new_secret()
        credential = MerchantCredential(
            client_id=str(self._ids.new_id()),
            seller_id=seller_id,
            name=name,
            secret_hash=self._hasher.digest(secret),
            created_at=self._clock.now(),
        )
        async with self._store.transaction() as tx:
            await tx.merchant.add_credential(credential)
        return secret, credential

    async def revoke_credentials(self, client_id: str) -> bool:
        """Revoke credentials and their tokens now; False if unknown or already revoked."""
        async with self._store.transaction() as tx:
            return await tx.merchant.revoke_credential(client_id, self._clock.now())

    async def issue_token(self, client_id: str, client_secret: str) -> IssuedToken:
        """OAuth2 client credentials grant. Unauthenticated for unknown, revoked or wrong ones."""
        async with self._store.transaction() as tx:
            credential = await tx.merchant.get_credential(client_id)
            if (
                credential is None
                or credential.revoked_at is not None
                or not hmac.compare_digest(
                    credential.secret_hash, self._hasher.digest(client_secret)
                )
            ):
                raise Unauthenticated(reason="invalid_client")
            secret = self._hasher.new_secret()
            await tx.merchant.add_access_token(
                MerchantAccessToken(
                    token_hash=self._hasher.digest(secret),
                    client_id=client_id,
                    seller_id=credential.seller_id,
                    expires_at=self._clock.now() + timedelta(seconds=ACCESS_TOKEN_LIFETIME_S),
                )
            )
        return IssuedToken(access_token=secret, expires_in=ACCESS_TOKEN_LIFETIME_S)

    async def authenticate(self, access_token: str) -> SubjectId:
        """The seller a merchant access token speaks for; Unauthenticated if unknown or expired.
        Tokens are cached like principals (ADR 0017): deleting one (credentials revoked) is
        announced, and its expiry is checked on every call."""
        digest = self._hasher.digest(access_token)

        async def lookup() -> MerchantAccessToken | None:
            async with self._store.transaction() as tx:
                return await tx.merchant.find_access_token(digest)

        token = await self._tokens.resolve(digest, lookup)
        seller = None if token is None else token.caller(self._clock.now())
        if seller is None:
            raise Unauthenticated(reason="unknown_token")
        return seller

    # ---- reservations and orders ----------------------------------------------------------

    async def reserve(self, seller_id: SubjectId, items: Sequence[ReserveItem]) -> ReservationView:
        """Hold keys for every item or for none: NotFound for a product the seller does not
        sell (active AUTO_KEY offer with that g2aProductId), OutOfStock when one falls short.
        A one-item reservation runs in a batch with those arriving at the same moment."""
        if not items:
            raise InvalidInput.of("body", "empty_reservation")
        if len(items) == 1:
            return await self._reserves.run(ReserveCall(seller_id=seller_id, item=items[0]))
        return await transact(self._store, lambda tx: self.reserve_in(tx, seller_id, items))

    async def reserve_in(
        self, tx: UnitOfWork, seller_id: SubjectId, items: Sequence[ReserveItem]
    ) -> ReservationView:
        held = [await self._hold(tx, seller_id, item) for item in items]
        reservation = self._reservation_of(seller_id, held)
        await tx.merchant.add_reservation(reservation)
        return (await self._views(tx, [reservation]))[0]

    async def reserve_many_in(
        self, tx: UnitOfWork, calls: Sequence[ReserveCall]
    ) -> list[ReservationView | None]:
        """`reserve_in` of one item for a batch of calls, the orders placed together
        (`OrderService.create_many_in`); a call that would not succeed alone is None."""
        products = sorted({(c.seller_id, c.item.product_id) for c in calls})
        offers = await tx.merchant.find_linked_offers(products)
        linked = {
            i: offer
            for i, c in enumerate(calls)
            if (offer := offers.get((c.seller_id, c.item.product_id))) is not None
        }
        creates = [
            CreateCall(principal=_G2A, offer_id=offer.id, quantity=calls[i].item.quantity)
            for i, offer in linked.items()
        ]
        known = {offer.id: offer for offer in linked.values()}
        placed = await self._orders.create_many_in(tx, creates, known)
        reservations = {
            i: self._reservation_of(
                calls[i].seller_id, [(_line(calls[i].item, view.order), view.order)]
            )
            for i, view in zip(linked, placed, strict=True)
            if view is not None
        }
        await tx.merchant.add_reservations(list(reservations.values()))
        views = dict(
            zip(reservations, await self._views(tx, list(reservations.values())), strict=True)
        )
        return [views.get(i) for i in range(len(calls))]

    def _reservation_of(
        self, seller_id: SubjectId, held: Sequence[tuple[ReservationLine, Order]]
    ) -> Reservation:
        orders = [order for _, order in held]
        return Reservation(
            id=str(orders[0].id),
            seller_id=seller_id,
            state=ReservationState.OPEN,
            lines=tuple(line for line, _ in held),
            created_at=orders[0].created_at,
            expires_at=min(o.reserved_until for o in orders),
        )

    async def _hold(
        self, tx: UnitOfWork, seller_id: SubjectId, item: ReserveItem
    ) -> tuple[ReservationLine, Order]:
        """Reserve one item's keys as an order of the offer linked to its product."""
        offer = await linked_offer(tx, seller_id, item.product_id)
        if offer is None:
            raise NotFound(resource="product", id=item.product_id)
        order = (await self._orders.create_in(tx, _G2A, offer.id, item.quantity)).order
        return _line(item, order), order

    async def renew(self, seller_id: SubjectId, reservation_id: str) -> ReservationView:
        """Hold the keys for another TTL from now. NotFound once expired or released."""
        async with self._store.transaction() as tx:
            reservation = await self._reservation(tx, seller_id, reservation_id)
            until = reservation.renew(self._clock.now(), self._ttl)
            for line in reservation.lines:
                await self._orders.extend_in(tx, _G2A, line.order_id, until)
            await tx.merchant.save_reservation(reservation)
            return (await self._views(tx, [reservation]))[0]

    async def release(self, seller_id: SubjectId, reservation_id: str) -> ReservationView | None:
        """Free the reserved keys now; IllegalTransition once ordered. The released reservation,
        or None when it was released already (idempotent)."""
        async with self._store.transaction() as tx:
            reservation = await self._reservation(tx, seller_id, reservation_id)
            if not reservation.release():
                return None
            for line in reservation.lines:
                await self._orders.cancel_in(tx, _G2A, line.order_id, "released_by_g2a")
            await tx.merchant.save_reservation(reservation)
            return ReservationView(reservation=reservation, stock=())

    async def order(
        self, seller_id: SubjectId, reservation_id: str, g2a_order_id: int
    ) -> ReservationView:
        """Deliver exactly the reserved keys. OrderExists on a repeat (nothing is allocated
        again), ReservationExpired after expiry, NotFound for an unknown or released one.
        Runs in a batch with the orders arriving at the same moment."""
        call = OrderingCall(
            seller_id=seller_id, reservation_id=reservation_id, g2a_order_id=g2a_order_id
        )
        return await self._orderings.run(call)

    async def order_in(
        self, tx: UnitOfWork, seller_id: SubjectId, reservation_id: str, g2a_order_id: int
    ) -> ReservationView:
        reservation = await self._reservation(tx, seller_id, reservation_id)
        reservation.order(g2a_order_id, self._clock.now())
        delivered = {}
        for line in reservation.lines:
            view = await self._orders.settle_in(tx, _G2A, line.order_id, f"g2a:{g2a_order_id}")
            delivered[line.order_id] = view.keys
        await tx.merchant.save_reservation(reservation)
        return (await self._views(tx, [reservation], delivered))[0]

    async def order_many_in(
        self, tx: UnitOfWork, calls: Sequence[OrderingCall]
    ) -> list[ReservationView | None]:
        """`order_in` for a batch of one-line reservations, their orders settled together
        (`OrderService.settle_many_in`); any other call is None."""
        ordering = await self._orderable(tx, calls)
        settles = [
            SettleCall(
                principal=_G2A,
                order_id=r.lines[0].order_id,
                reference=f"g2a:{calls[i].g2a_order_id}",
            )
            for i, r in ordering.items()
        ]
        settled = await self._orders.settle_many_in(tx, settles)
        done = {
            i: (r, view) for (i, r), view in zip(ordering.items(), settled, strict=True) if view
        }
        reservations = [r for r, _ in done.values()]
        await tx.merchant.save_reservations(reservations)
        delivered = {r.lines[0].order_id: view.keys for r, view in done.values()}
        views = dict(zip(done, await self._views(tx, reservations, delivered), strict=True))
        return [views.get(i) for i in range(len(calls))]

    async def _orderable(
        self, tx: UnitOfWork, calls: Sequence[OrderingCall]
    ) -> dict[int, Reservation]:
        """By call, its one-line reservation moved to ordered (in memory), for the first call
        naming it; calls that `order_in` would refuse are absent."""
        wanted = {(c.seller_id, c.reservation_id) for c in calls}
        found = await tx.merchant.get_reservations(wanted, for_update=True)
        now, named, ordering = self._clock.now(), set(), {}
        for i, c in enumerate(calls):
            reservation = found.get((c.seller_id, c.reservation_id))
            if reservation is None or len(reservation.lines) != 1 or reservation.id in named:
                continue
            named.add(reservation.id)
            with contextlib.suppress(AutokeyError):
                reservation.order(c.g2a_order_id, now)
                ordering[i] = reservation
        return ordering

    async def inventory(self, seller_id: SubjectId, order_ref: str) -> ReservationView:
        """The keys of an order again (each reveal audited); `order_ref` is autokey's order id
        or G2A's. NotFound if the seller has no such order."""
        async with self._store.transaction() as tx:
            reservation = await self._ordered(tx, seller_id, order_ref)
            delivered = {}
            for line in reservation.lines:
                view = await self._orders.fulfill_in(tx, _G2A, line.order_id)
                delivered[line.order_id] = view.keys
            return (await self._views(tx, [reservation], delivered))[0]

    async def return_keys(
        self, seller_id: SubjectId, order_ref: str, key_ids: Sequence[KeyId]
    ) -> None:
        """Record keys of an order as returned. They stay DELIVERED (never resold); the
        seller sees them. NotFound for a key that is not part of the order."""
        if not key_ids:
            raise InvalidInput.of("id[]", "required")
        async with self._store.transaction() as tx:
            reservation = await self._ordered(tx, seller_id, order_ref)
            pools, now = {}, self._clock.now()
            for line in reservation.lines:
                pools.update({k.id: k.pool_id for k in await tx.keys.for_order(line.order_id)})
            for key_id in key_ids:
                if key_id not in pools:
                    raise NotFound(resource="inventory", id=str(key_id))
            await tx.merchant.add_returned_keys(
                [
                    ReturnedKey(
                        key_id=k,
                        seller_id=seller_id,
                        reservation_id=reservation.id,
                        returned_at=now,
                    )
                    for k in key_ids
                ]
            )
            await tx.audit.append(self._returned(reservation, key_ids, pools, now))

    def _returned(
        self,
        reservation: Reservation,
        key_ids: Sequence[KeyId],
        pools: Mapping[KeyId, PoolId],
        now: datetime,
    ) -> list[AuditEvent]:
        """One KEYS_RETURNED event per pool the returned keys come from."""
        return [
            AuditEvent(
                id=EventId(self._ids.new_id()),
                occurred_at=now,
                action=AuditAction.KEYS_RETURNED,
                actor=G2A_CUSTOMER,
                pool_id=pool,
                key_ids=tuple(k for k in key_ids if pools[k] == pool),
                details={"channel": "g2a", "reservation": reservation.id},
            )
            for pool in sorted({pools[k] for k in key_ids})
        ]

    async def notify(self, seller_id: SubjectId, notifications: Sequence[NotificationIn]) -> None:
        """Store each notification; `auction_deactivated` moves the linked offer to inactive."""
        async with self._store.transaction() as tx:
            for n in notifications:
                await tx.merchant.add_notification(
                    MerchantNotification(
                        id=self._ids.new_id(),
                        seller_id=seller_id,
                        type=n.type,
                        date=n.date,
                        message=n.message,
                        auction_id=n.auction_id,
                        g2a_offer_id=n.g2a_offer_id,
                        received_at=self._clock.now(),
                    )
                )
                if n.type == NotificationType.AUCTION_DEACTIVATED and n.g2a_offer_id:
                    await self._deactivate(tx, seller_id, n.g2a_offer_id)

    async def _deactivate(self, tx: UnitOfWork, seller_id: SubjectId, g2a_offer_id: str) -> None:
        link = await tx.merchant.find_link(seller_id, g2a_offer_id)
        offer = None if link is None else await tx.offers.get(link.offer_id)
        if offer is not None and offer.status is OfferStatus.ACTIVE:
            offer.set_status(OfferStatus.INACTIVE, self._clock.now())
            await tx.offers.save(offer)

    async def ping(self) -> None:
        """Raises StoreUnavailable when the store does not answer."""
        await self._store.ping()

    # ---- what the seller sees --------------------------------------------------------------

    async def reservations(self, principal: Principal, page: PageRequest) -> Page[Reservation]:
        """The seller's sales on G2A: every reservation, with its state and G2A order id."""
        principal.require(Role.SELLER, action="list_reservations")
        async with self._store.transaction() as tx:
            return await tx.merchant.list_reservations(principal.subject, page)

    async def returned_keys(self, principal: Principal, page: PageRequest) -> Page[ReturnedKey]:
        principal.require(Role.SELLER, action="list_returned_keys")
        async with self._store.transaction() as tx:
            return await tx.merchant.list_returned_keys(principal.subject, page)

    async def notifications(
        self, principal: Principal, page: PageRequest
    ) -> Page[MerchantNotification]:
        principal.require(Role.SELLER, action="list_notifications")
        async with self._store.transaction() as tx:
            return await tx.merchant.list_notifications(principal.subject, page)

    async def link_offer(
        self, principal: Principal, offer_id: OfferId, g2a_offer_id: str
    ) -> G2AOfferLink:
        """List the seller's AUTO_KEY offer on G2A as `g2a_offer_id` (Import API): its stock is
        pushed there, and G2A's `auction_deactivated` for that id deactivates it."""
        if not 1 <= len(g2a_offer_id.strip()) <= MAX_G2A_OFFER_ID:
            raise InvalidInput.of("g2a_offer_id", "invalid_length")
        async with self._store.transaction() as tx:
            offer = await tx.offers.get(offer_id)
            principal.require(Role.SELLER, action="manage_offers")
            offer = principal.must_own(offer, "offer", offer_id)
            if offer.delivery_type is not DeliveryType.AUTO_KEY:
                raise InvalidInput.of("delivery_type", "auto_key_only")
            link = await tx.merchant.get_link(offer_id)
            if link is None or link.g2a_offer_id != g2a_offer_id.strip():
                link = G2AOfferLink(
                    offer_id=offer.id, seller_id=offer.seller_id, g2a_offer_id=g2a_offer_id.strip()
                )
                await tx.merchant.save_link(link)
            return link

    async def offer_link(self, principal: Principal, offer_id: OfferId) -> G2AOfferLink:
        """The offer's G2A link with the last synced stock and error; NotFound without one."""
        principal.require(Role.SELLER, action="manage_offers")
        async with self._store.transaction() as tx:
            link = await tx.merchant.get_link(offer_id)
        return principal.must_own(link, "g2a_offer_link", offer_id)

    # ---- helpers --------------------------------------------------------------------------

    @staticmethod
    async def _reservation(
        tx: UnitOfWork, seller_id: SubjectId, reservation_id: str
    ) -> Reservation:
        found = await tx.merchant.get_reservation(seller_id, reservation_id, for_update=True)
        if found is None:
            raise NotFound(resource="reservation", id=reservation_id[:64])
        return found

    @staticmethod
    async def _ordered(tx: UnitOfWork, seller_id: SubjectId, order_ref: str) -> Reservation:
        found = await tx.merchant.find_ordered(seller_id, order_ref)
        if found is None:
            raise NotFound(resource="order", id=order_ref[:64])
        return found

    async def _views(
        self,
        tx: UnitOfWork,
        reservations: Sequence[Reservation],
        delivered: Mapping[OrderId, tuple[DeliveredKey, ...]] | None = None,
    ) -> list[ReservationView]:
        """Each reservation with its stock: the keys left in each line's pool (from the pools'
        counts, so a large pool costs no more than a small one) and the keys `delivered` to
        each line's order."""
        pools = {line.pool_id for r in reservations for line in r.lines}
        available = await tx.pools.available_counts(pools)
        return [
            ReservationView(
                reservation=r,
                stock=tuple(
                    Stock(
                        product_id=line.product_id,
                        inventory_size=inventory_size(available[line.pool_id]),
                        keys=(delivered or {}).get(line.order_id, ()),
                    )
                    for line in r.lines
                ),
            )
            for r in reservations
        ]


def _line(item: ReserveItem, order: Order) -> ReservationLine:
    return ReservationLine(
        product_id=item.product_id,
        quantity=item.quantity,
        order_id=order.id,
        pool_id=order.pool_id,
    )
