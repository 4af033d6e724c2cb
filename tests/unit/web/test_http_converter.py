"""The HTTP converter round-trips the request wire classes through JSON, enums included: a
member goes out as its value and comes back as the member."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from autokey.entrypoints.web.schemas import (
    CreateOrderIn,
    CreatePoolIn,
    OfferDraftIn,
    OfferStatusIn,
    PublishIn,
    make_http_converter,
)


@given(
    st.one_of(
        st.from_type(CreatePoolIn),
        st.from_type(OfferDraftIn),
        st.from_type(OfferStatusIn),
        st.from_type(PublishIn),
        st.from_type(CreateOrderIn),
    )
)
def test_request_wire_classes_round_trip_through_json(value: Any) -> None:
    conv = make_http_converter()
    wire = json.loads(json.dumps(conv.unstructure(value)))
    assert conv.structure(wire, type(value)) == value
