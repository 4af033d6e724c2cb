"""The merchant edges' converters round-trip: G2A's snake_case wire classes (the merchant
API's and the webhook event), and the JSON lines of a reservation row."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autokey.adapters.merchant_rows import lines_from, lines_text, lines_value
from autokey.domain.model.ids import OrderId, PoolId
from autokey.domain.model.merchant import ReservationLine
from autokey.domain.model.webhooks import WebhookEventType
from autokey.entrypoints.web.merchant import CreateOrderIn, NotificationBodyIn, ReserveItemIn
from autokey.entrypoints.web.schemas import G2AEventIn, make_merchant_converter

lines = st.lists(
    st.builds(
        ReservationLine,
        product_id=st.from_regex(r"[1-9][0-9]{13}", fullmatch=True),
        quantity=st.integers(1, 100),
        order_id=st.uuids().map(OrderId),
        pool_id=st.uuids().map(PoolId),
    ),
    min_size=1,
    max_size=5,
).map(tuple)


@given(lines)
def test_reservation_lines_round_trip_as_text_and_as_json_values(
    value: tuple[ReservationLine, ...],
) -> None:
    assert lines_from(lines_text(value)) == value
    assert lines_from(lines_value(value)) == value


@given(
    st.one_of(
        st.builds(
            ReserveItemIn,
            product_id=st.integers(),
            quantity=st.integers(),
            additional_data=st.none() | st.dictionaries(st.text(), st.text()),
        ),
        st.builds(CreateOrderIn, reservation_id=st.text(), g2a_order_id=st.integers()),
        st.builds(NotificationBodyIn, notification_type=st.text(), date=st.text()),
        st.builds(
            G2AEventIn,
            event_id=st.text(),
            type=st.sampled_from(WebhookEventType),
            order_id=st.none() | st.text(),
            occurred_at=st.none() | st.datetimes(timezones=st.just(UTC)),
            data=st.dictionaries(st.text(), st.integers() | st.text()),
        ),
    )
)
def test_merchant_wire_classes_round_trip(value: Any) -> None:
    conv = make_merchant_converter()
    assert conv.structure(conv.unstructure(value), type(value)) == value


@pytest.mark.parametrize(
    "bad", [{"product_id": "10000068865001", "quantity": 1}, {"product_id": 1, "quantity": True}]
)
def test_merchant_converter_refuses_coerced_json_types(bad: dict[str, Any]) -> None:
    with pytest.raises(cattrs.ClassValidationError):
        make_merchant_converter().structure(bad, ReserveItemIn)
