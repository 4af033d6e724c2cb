"""The pure domain model: state machines (exhaustively), validation, values."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import product

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autokey.domain.model.errors import (
    IdempotencyInFlight,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidInput,
    KeyNotAvailable,
    OrderNotPaid,
    ReservationExpired,
)
from autokey.domain.model.idempotency import IdempotencyRecord, IdempotencyState, StoredResponse
from autokey.domain.model.ids import OrderId
from autokey.domain.model.keys import (
    KEY_TRANSITIONS,
    KeyStatus,
    LineProblem,
    PoolCounts,
    UploadReport,
    check_key_text,
)
from autokey.domain.model.merchant import inventory_size
from autokey.domain.model.offers import (
    Availability,
    DeliveryType,
    Money,
    Offer,
    OfferDraft,
    OfferStatus,
    StockLevel,
)
from autokey.domain.model.orders import (
    ORDER_TRANSITIONS,
    UPSTREAM_RANK,
    OrderStatus,
    UpstreamState,
    check_quantity,
)
from tests import builders as b


def _key_in(status: KeyStatus):  # type: ignore[no-untyped-def]
    key = b.key(b.pool().id)
    key.status = status
    return key


@pytest.mark.parametrize(("start", "target"), list(product(KeyStatus, KeyStatus)))
def test_every_key_transition_is_allowed_exactly_when_the_table_says(
    start: KeyStatus, target: KeyStatus
) -> None:
    key = _key_in(start)
    move = {
        KeyStatus.RESERVED: lambda: key.reserve(OrderId(b.new_uuid()), b.T0),
        KeyStatus.AVAILABLE: key.release,
        KeyStatus.DELIVERED: lambda: key.deliver(b.T0),
        KeyStatus.INVALID: key.invalidate,
    }[target]
    if target in KEY_TRANSITIONS[start]:
        move()
        assert key.status is target
    else:
        with pytest.raises((IllegalTransition, KeyNotAvailable)):
            move()
        assert key.status is start


def test_only_available_keys_can_be_invalidated_with_a_clear_error() -> None:
    for status in (KeyStatus.RESERVED, KeyStatus.DELIVERED):
        with pytest.raises(KeyNotAvailable) as caught:
            _key_in(status).invalidate()
        assert caught.value.status == status


def _order_in(status: OrderStatus):  # type: ignore[no-untyped-def]
    owner = b.seller()
    order = b.order(b.offer(owner, b.pool(owner).id), b.seller())
    order.status = status
    return order


@pytest.mark.parametrize(("start", "target"), list(product(OrderStatus, OrderStatus)))
def test_every_order_transition_is_allowed_exactly_when_the_table_says(
    start: OrderStatus, target: OrderStatus
) -> None:
    order = _order_in(start)
    moves = {
        OrderStatus.PAID: lambda: order.pay(b.T0),
        OrderStatus.FULFILLING: lambda: order.start_sourcing(b.T0),
        OrderStatus.FULFILLED: lambda: order.fulfill(b.T0),
        # a buyer cancels a PENDING order; a paid one is abandoned when its key cannot come
        OrderStatus.CANCELED: (
            (lambda: order.abandon(b.T0, "upstream_failed"))
            if start in (OrderStatus.PAID, OrderStatus.FULFILLING)
            else (lambda: order.cancel(b.T0, "test"))
        ),
    }
    if target not in moves:
        assert target not in {t for ts in ORDER_TRANSITIONS.values() for t in ts}
        return
    if target in ORDER_TRANSITIONS[start]:
        moves[target]()
        assert order.status is target
    else:
        with pytest.raises((IllegalTransition, OrderNotPaid)):
            moves[target]()
        assert order.status is start


def test_an_expired_reservation_cannot_be_paid() -> None:
    order = _order_in(OrderStatus.PENDING)
    with pytest.raises(ReservationExpired):
        order.pay(order.reserved_until)
    assert order.is_expired(order.reserved_until)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ABCDE", None),
        ("A" * 256, None),
        ("ÄÖÜ-ß-キー", None),
        ("ABCD", LineProblem.INVALID_LENGTH),
        ("A" * 257, LineProblem.INVALID_LENGTH),
        ("ABC DE", LineProblem.INVALID_CHARACTERS),
        ("ABC\tDE", LineProblem.INVALID_CHARACTERS),
        ("ABC\x00DE", LineProblem.INVALID_CHARACTERS),
        ("ABC\u200bDE", LineProblem.INVALID_CHARACTERS),
        ("ABC\u00a0DE", LineProblem.INVALID_CHARACTERS),
        ("ABC\udcffDE", LineProblem.INVALID_CHARACTERS),
    ],
)
def test_key_text_rules(text: str, problem: LineProblem | None) -> None:
    assert check_key_text(text) is problem


@given(st.text(min_size=5, max_size=256))
def test_accepted_keys_have_no_whitespace_or_control_characters(text: str) -> None:
    if check_key_text(text) is None:
        assert text.isprintable()
        assert not any(ch.isspace() for ch in text)


def test_upload_report_caps_its_error_list() -> None:
    report = UploadReport()
    for line in range(1, 1500):
        report.reject(line, LineProblem.DUPLICATE)
    assert (report.duplicates, len(report.errors), report.errors_truncated) == (1499, 1000, True)


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        ("abc", "EUR", "not_a_decimal"),
        ("-1", "EUR", "not_a_decimal"),
        ("1.00001", "EUR", "too_many_decimals"),
        ("NaN", "EUR", "not_a_decimal"),
        ("1", "eur", "invalid_currency"),
        ("1", "EURO", "invalid_currency"),
    ],
)
def test_money_rejects_bad_values(amount: str, currency: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Money.parse(amount, currency)
    assert caught.value.problems[0].code == code


def test_money_keeps_exact_decimals() -> None:
    price = Money.parse("19.99", "EUR")
    assert price.times(3) == Money(amount=Decimal("59.97"), currency="EUR")


def test_quantity_bounds() -> None:
    assert check_quantity(100) == 100
    for bad in (0, 101, -1):
        with pytest.raises(InvalidInput):
            check_quantity(bad)


def test_availability_follows_stock_not_status() -> None:
    owner = b.seller()
    offer = b.offer(owner, b.pool(owner).id, OfferStatus.ACTIVE)
    assert offer.availability(0) is Availability.OUT_OF_STOCK
    assert offer.availability(1) is Availability.IN_STOCK
    assert PoolCounts(available=1, reserved=2, delivered=3, invalid=4).total == 10


@given(st.integers(min_value=0, max_value=10**7))
def test_g2a_is_told_of_the_available_keys_up_to_ten_thousand(available: int) -> None:
    assert inventory_size(available) == (available if available <= 10_000 else 10_000)


@pytest.mark.parametrize(("first", "late"), list(product(UpstreamState, UpstreamState)))
def test_upstream_state_only_moves_forward(first: UpstreamState, late: UpstreamState) -> None:
    order = _order_in(OrderStatus.FULFILLING)
    order.record_upstream(first, b.T0, "G2A-1")
    moved = order.record_upstream(late, b.T0, "G2A-OTHER")
    assert moved is (UPSTREAM_RANK[late] > UPSTREAM_RANK[first])
    assert order.upstream_state is (late if moved else first)
    assert order.upstream_order_id == "G2A-1"


@pytest.mark.parametrize("failure", [UpstreamState.FAILED, UpstreamState.REFUNDED])
def test_an_upstream_failure_cancels_a_fulfilling_order_but_never_a_fulfilled_one(
    failure: UpstreamState,
) -> None:
    sourcing = _order_in(OrderStatus.FULFILLING)
    assert sourcing.record_upstream(failure, b.T0, "G2A-1")
    assert (sourcing.status, sourcing.cancel_reason) == (
        OrderStatus.CANCELED,
        f"upstream_{failure.value}",
    )
    delivered = _order_in(OrderStatus.FULFILLED)
    assert delivered.record_upstream(failure, b.T0, "G2A-2")
    assert delivered.status is OrderStatus.FULFILLED


def test_a_buyer_cannot_cancel_an_order_being_sourced() -> None:
    with pytest.raises(IllegalTransition):
        _order_in(OrderStatus.FULFILLING).cancel(b.T0, "changed my mind")


def test_stock_level_is_low_at_the_threshold_and_always_in_stock_without_a_pool() -> None:
    owner = b.seller()
    auto = attrs.evolve(b.offer(owner, b.pool(owner).id), low_stock_threshold=3)
    assert [auto.stock_level(n) for n in (0, 1, 3, 4)] == [
        StockLevel.OUT_OF_STOCK,
        StockLevel.LOW,
        StockLevel.LOW,
        StockLevel.IN_STOCK,
    ]
    assert attrs.evolve(auto, low_stock_threshold=None).stock_level(1) is StockLevel.IN_STOCK
    manual = attrs.evolve(auto, delivery_type=DeliveryType.MANUAL, key_pool_id=None)
    assert manual.stock_level(0) is StockLevel.IN_STOCK


def test_a_crossing_is_reported_once_and_a_threshold_is_bounded() -> None:
    owner = b.seller()
    offer = attrs.evolve(b.offer(owner, b.pool(owner).id), low_stock_threshold=1)
    assert offer.record_stock_level(5) is None
    assert offer.record_stock_level(1) is StockLevel.LOW
    assert offer.record_stock_level(1) is None
    assert offer.record_stock_level(0) is StockLevel.OUT_OF_STOCK
    assert offer.record_stock_level(9) is StockLevel.IN_STOCK
    with pytest.raises(InvalidInput):
        attrs.evolve(offer, low_stock_threshold=-1)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=5, max_size=256))
def test_the_ascii_fast_path_judges_characters_as_the_general_rule(text: str) -> None:
    general = any(ch.isspace() or unicodedata.category(ch)[0] in "CZ" for ch in text)
    assert (check_key_text(text) is LineProblem.INVALID_CHARACTERS) is general


def test_a_revised_offer_takes_the_draft_terms_and_keeps_its_status_and_history() -> None:
    owner = b.seller()
    pool_id = b.pool(owner).id
    draft = OfferDraft(
        id=None,
        title="  A game  ",
        price=Money.parse("5", "EUR"),
        delivery_type=DeliveryType.AUTO_KEY,
        key_pool_id=pool_id,
        low_stock_threshold=3,
    )
    offer = Offer.from_draft(draft, id=b.offer(owner, pool_id).id, seller_id=owner, now=b.T0)
    assert (offer.status, offer.title, offer.low_stock_threshold) == (
        OfferStatus.DRAFT,
        "A game",
        3,
    )
    offer.set_status(OfferStatus.ACTIVE, b.T0)
    offer.recorded_stock_level = StockLevel.LOW
    later = b.T0.replace(hour=13)
    revised = offer.revised(attrs.evolve(draft, title="Renamed", low_stock_threshold=None), later)
    assert (revised.id, revised.status, revised.created_at, revised.updated_at) == (
        offer.id,
        OfferStatus.ACTIVE,
        b.T0,
        later,
    )
    assert (revised.title, revised.low_stock_threshold) == ("Renamed", None)
    assert revised.recorded_stock_level is StockLevel.LOW
    with pytest.raises(InvalidInput):
        offer.revised(attrs.evolve(draft, key_pool_id=None), later)


# --- Idempotency records ---------------------------------------------------------------------


def test_an_idempotency_record_answers_a_repeat_by_its_lease_fingerprint_and_response() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    record = IdempotencyRecord.claim("buyer:x", "k1", b"f1", t0, lease_s=10)
    assert (record.locked_until, record.expires_at) == (
        t0 + timedelta(seconds=10),
        t0 + timedelta(days=1),
    )
    with pytest.raises(IdempotencyInFlight) as in_flight:
        record.replay_for(b"f1", t0 + timedelta(seconds=3))
    assert in_flight.value.retry_after_s == 7
    assert record.replay_for(b"f1", t0 + timedelta(seconds=10)) is None  # died: take it over
    done = attrs.evolve(
        record,
        state=IdempotencyState.COMPLETED,
        response=StoredResponse(status=201, body=b"{}"),
    )
    assert done.replay_for(b"f1", t0 + timedelta(seconds=3)) == done.response
    with pytest.raises(IdempotencyKeyReused):
        done.replay_for(b"f2", t0 + timedelta(seconds=3))
    assert done.replay_for(b"f2", t0 + timedelta(days=1)) is None  # expired: a fresh start
