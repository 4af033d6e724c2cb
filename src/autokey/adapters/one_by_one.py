"""The group-commit methods of the key, offer and order ports, one entity at a time.

For the stores where a call costs no round trip and one transaction holds the whole store
(memory, SQLite): there a batch gains nothing from a statement of its own, so each method is
the single-entity one in a loop, with the same outcome the PostgreSQL statements give.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from autokey.domain.model import ids
from autokey.domain.model.keys import Key
from autokey.domain.model.merchant import Reservation
from autokey.domain.model.offers import Offer
from autokey.domain.model.orders import Order
from autokey.ports import store as port


class KeysOneByOne(port.KeyRepository):
    async def claim_many(
        self,
        wants: Sequence[tuple[ids.OrderId, ids.PoolId, int]],
        now: datetime,
    ) -> Mapping[ids.OrderId, Sequence[ids.KeyId]]:
        served: dict[ids.OrderId, Sequence[ids.KeyId]] = {}
        stopped: set[ids.PoolId] = set()
        for order_id, pool_id, quantity in wants:
            if pool_id in stopped:
                continue
            claimed = await self.claim(pool_id, order_id, quantity, now)
            if len(claimed) < quantity:
                await self.release_order(order_id)  # all or nothing, and the pool stops
                stopped.add(pool_id)
                continue
            served[order_id] = claimed
        return served

    async def deliver_orders(
        self, order_ids: Collection[ids.OrderId], now: datetime
    ) -> Mapping[ids.OrderId, Sequence[Key]]:
        delivered = {order_id: await self.deliver_order(order_id, now) for order_id in order_ids}
        return {order_id: keys for order_id, keys in delivered.items() if keys}


class OffersOneByOne(port.OfferRepository):
    async def get_many(self, offer_ids: Collection[ids.OfferId]) -> Mapping[ids.OfferId, Offer]:
        found = {offer_id: await self.get(offer_id) for offer_id in offer_ids}
        return {offer_id: offer for offer_id, offer in found.items() if offer is not None}


class OrdersOneByOne(port.OrderRepository):
    async def add_many(self, orders: Sequence[Order]) -> None:
        for order in orders:
            await self.add(order)

    async def save_many(self, orders: Sequence[Order]) -> None:
        for order in orders:
            await self.save(order)

    async def get_many(
        self, order_ids: Collection[ids.OrderId], *, for_update: bool = False
    ) -> Mapping[ids.OrderId, Order]:
        found = {i: await self.get(i, for_update=for_update) for i in sorted(set(order_ids))}
        return {order_id: order for order_id, order in found.items() if order is not None}


class MerchantOneByOne(port.MerchantRepository):
    async def get_reservations(
        self, wanted: Collection[tuple[ids.SubjectId, str]], *, for_update: bool = False
    ) -> Mapping[tuple[ids.SubjectId, str], Reservation]:
        found = {
            (seller, i): await self.get_reservation(seller, i, for_update=for_update)
            for seller, i in sorted(set(wanted), key=lambda pair: pair[1])
        }
        return {pair: reservation for pair, reservation in found.items() if reservation is not None}

    async def add_reservations(self, reservations: Sequence[Reservation]) -> None:
        for reservation in reservations:
            await self.add_reservation(reservation)

    async def save_reservations(self, reservations: Sequence[Reservation]) -> None:
        for reservation in reservations:
            await self.save_reservation(reservation)
