"""Hypothesis state machine interleaving G2A's merchant operations (reserve, renew, release,
order, return) and expiries with buyer-API orders and uploads, on every store: the pool's
counts, and the keys every order and reservation holds, match a simple model after each step."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from autokey.adapters.crypto import AesGcmKeyCipher, Sha256SecretHasher
from autokey.adapters.payments import SimulatedPaymentGateway
from autokey.adapters.system import Uuid7Ids
from autokey.domain.model.errors import (
    IllegalTransition,
    NotFound,
    OrderExists,
    OutOfStock,
    ReservationExpired,
)
from autokey.domain.model.ids import KeyId, OrderId
from autokey.domain.model.keys import KeyStatus
from autokey.domain.model.offers import OfferDraft
from autokey.domain.services.merchant import MerchantService, ReserveItem
from autokey.domain.services.orders import OrderService
from tests.conftest import MASTER_KEY
from tests.integration.test_stateful import STORES, TTL_S, OrderMachine, _run, _with_database

PRODUCT = "10000068865001"
OPEN, ORDERED, RELEASED, EXPIRED = "open", "ordered", "released", "expired"


class MerchantMachine(OrderMachine):
    def __init__(self) -> None:
        super().__init__()
        offer = self.run(self.offers.get(self.seller, self.offer_id)).offer
        draft = OfferDraft(
            id=offer.id,
            title=offer.title,
            price=offer.price,
            delivery_type=offer.delivery_type,
            key_pool_id=offer.key_pool_id,
            g2a_product_id=PRODUCT,
        )
        self.run(self.offers.save_draft(self.seller, draft))
        g2a_orders = OrderService(
            self.store,
            AesGcmKeyCipher([MASTER_KEY]),
            SimulatedPaymentGateway(),
            self.clock,
            Uuid7Ids(),
            reservation_ttl_s=TTL_S,
        )
        self.merchant = MerchantService(
            self.store, g2a_orders, Sha256SecretHasher(), self.clock, Uuid7Ids(), TTL_S
        )
        self.reservations: dict[str, tuple[OrderId, int]] = {}
        self.state: dict[str, str] = {}
        self.g2a_ids = 0

    def _pick_reservation(self, pick: int) -> str:
        ids = sorted(self.reservations)
        return ids[pick % len(ids)]

    @rule(quantity=st.integers(1, 3))
    def g2a_reserve(self, quantity: int) -> None:
        item = ReserveItem(product_id=PRODUCT, quantity=quantity)
        try:
            view = self.run(self.merchant.reserve(self.seller.subject, [item]))
        except OutOfStock:
            assert self.model.available < quantity
            return
        assert self.model.available >= quantity
        self.bump(available=-quantity, reserved=quantity)
        assert [s.inventory_size for s in view.stock] == [self.model.available]
        rid = view.reservation.id
        self.reservations[rid] = (view.reservation.lines[0].order_id, quantity)
        self.state[rid] = OPEN

    @precondition(lambda self: self.reservations)
    @rule(pick=st.integers(0, 100))
    def g2a_renew(self, pick: int) -> None:
        rid = self._pick_reservation(pick)
        expected = {
            OPEN: None,
            ORDERED: IllegalTransition,
            RELEASED: NotFound,
            EXPIRED: NotFound,
        }[self.state[rid]]
        self._expect(expected, self.merchant.renew(self.seller.subject, rid))

    @precondition(lambda self: self.reservations)
    @rule(pick=st.integers(0, 100))
    def g2a_release(self, pick: int) -> None:
        rid = self._pick_reservation(pick)
        before = self.state[rid]
        ok = before != ORDERED
        self._expect(
            None if ok else IllegalTransition, self.merchant.release(self.seller.subject, rid)
        )
        if before == OPEN:
            quantity = self.reservations[rid][1]
            self.bump(available=quantity, reserved=-quantity)
        if ok:
            self.state[rid] = RELEASED

    @precondition(lambda self: self.reservations)
    @rule(pick=st.integers(0, 100))
    def g2a_order(self, pick: int) -> None:
        rid = self._pick_reservation(pick)
        before = self.state[rid]
        expected = {
            OPEN: None,
            ORDERED: OrderExists,
            RELEASED: NotFound,
            EXPIRED: ReservationExpired,
        }[before]
        self.g2a_ids += 1
        view = self._expect(expected, self.merchant.order(self.seller.subject, rid, self.g2a_ids))
        if view is not None:
            quantity = self.reservations[rid][1]
            assert len(view.stock[0].keys) == quantity
            self.bump(reserved=-quantity, delivered=quantity)
            self.state[rid] = ORDERED

    @rule(
        quantities=st.lists(st.integers(1, 3), max_size=4),
        picks=st.lists(st.integers(0, 100), max_size=4),
    )
    def g2a_calls_at_the_same_moment(self, quantities: list[int], picks: list[int]) -> None:
        """One-item reservations and orders at once, through group commit: each call ends
        as it would alone (a repeated order of one reservation too)."""
        rids = [self._pick_reservation(p) for p in picks] if self.reservations else []

        async def at_once() -> list[Any]:
            calls = [
                self.merchant.reserve(
                    self.seller.subject, [ReserveItem(product_id=PRODUCT, quantity=q)]
                )
                for q in quantities
            ]
            for rid in rids:
                self.g2a_ids += 1
                calls.append(self.merchant.order(self.seller.subject, rid, self.g2a_ids))
            return await asyncio.gather(*calls, return_exceptions=True)

        results = self.run(at_once())
        for quantity, result in zip(quantities, results, strict=False):
            if isinstance(result, OutOfStock):
                continue
            assert not isinstance(result, BaseException), result
            self.bump(available=-quantity, reserved=quantity)
            rid = result.reservation.id
            self.reservations[rid] = (result.reservation.lines[0].order_id, quantity)
            self.state[rid] = OPEN
        assert self.model.available >= 0
        seen: set[str] = set()
        for rid, result in zip(rids, results[len(quantities) :], strict=True):
            before = self.state[rid]
            if before == OPEN and rid not in seen:
                assert not isinstance(result, BaseException), result
                quantity = self.reservations[rid][1]
                assert len(result.stock[0].keys) == quantity
                self.bump(reserved=-quantity, delivered=quantity)
                self.state[rid] = ORDERED
            else:
                expected = {
                    OPEN: OrderExists,  # ordered by an earlier call of this moment
                    ORDERED: OrderExists,
                    RELEASED: NotFound,
                    EXPIRED: ReservationExpired,
                }[before]
                assert isinstance(result, expected), (before, result)
            seen.add(rid)

    @precondition(lambda self: ORDERED in self.state.values())
    @rule(pick=st.integers(0, 100))
    def g2a_return_a_key(self, pick: int) -> None:
        ordered = sorted(r for r, s in self.state.items() if s == ORDERED)
        rid = ordered[pick % len(ordered)]
        view = self.run(self.merchant.inventory(self.seller.subject, rid))
        key_id = KeyId(view.stock[0].keys[0].id)
        self.run(self.merchant.return_keys(self.seller.subject, rid, [key_id]))
        # Returned keys stay DELIVERED: the model does not move.

    @rule()
    def expire_reservations(self) -> None:
        opened = [r for r, s in self.state.items() if s == OPEN]
        super().expire_reservations()
        for rid in opened:
            quantity = self.reservations[rid][1]
            self.bump(available=quantity, reserved=-quantity)
            self.state[rid] = EXPIRED

    def _expect(self, error: type[Exception] | None, call: object) -> object:
        if error is None:
            return self.run(call)
        with pytest.raises(error):
            self.run(call)
        return None

    @invariant()
    def every_reservation_holds_exactly_its_keys(self) -> None:
        by_order: dict[OrderId, list[KeyStatus]] = {}
        for key in self.all_keys():
            if key.order_id is not None:
                by_order.setdefault(key.order_id, []).append(key.status)
        for rid, (order_id, quantity) in self.reservations.items():
            expected = {
                OPEN: [KeyStatus.RESERVED] * quantity,
                ORDERED: [KeyStatus.DELIVERED] * quantity,
                RELEASED: [],
                EXPIRED: [],
            }[self.state[rid]]
            assert by_order.get(order_id, []) == expected, (self.state[rid], rid)


@pytest.mark.parametrize("kind", STORES)
def test_merchant_state_machine(kind: str, tmp_path: Path) -> None:
    _with_database(kind, lambda url: _run(MerchantMachine, kind, tmp_path, url, 30))
