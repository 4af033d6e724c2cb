"""Prices on the wire: whatever the model accepts, the HTTP converter writes in plain notation
and reads back to the same value (the property the exact totals rely on)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from autokey.domain.model.currencies import MINOR_UNITS
from autokey.domain.model.offers import MAX_AMOUNT_DIGITS, Money
from autokey.entrypoints.web.schemas import MoneyIO, make_http_converter


@st.composite
def prices(draw: st.DrawFn) -> Money:
    currency = draw(st.sampled_from(sorted(MINOR_UNITS)))
    places = draw(st.integers(0, MINOR_UNITS[currency]))
    units = draw(st.integers(0, 10 ** (MAX_AMOUNT_DIGITS + places) - 1))
    return Money(amount=Decimal(units).scaleb(-places), currency=currency)


@given(prices(), st.integers(1, 100))
def test_prices_and_totals_round_trip_through_the_http_converter(
    price: Money, quantity: int
) -> None:
    conv = make_http_converter()
    for money in (price, price.times(quantity)):
        wire = conv.unstructure(MoneyIO.of(money))
        assert set(wire["amount"]) <= set("0123456789.")
        back = conv.structure(wire, MoneyIO)
        assert Decimal(back.amount) == money.amount
    assert MoneyIO.of(price).to_domain() == price
