"""The HTTP converter round-trips the request wire classes through JSON, enums included: a
member goes out as its value and comes back as the member. Responses write ids, instants and
enum members as text, also where orjson refuses a body and json.dumps writes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import attrs
from hypothesis import given
from hypothesis import strategies as st

from autokey.domain.model.audit import AuditAction
from autokey.entrypoints.web.context import json_body
from autokey.entrypoints.web.schemas import (
    AuditEventOut,
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
    wire = json.loads(json_body(conv.unstructure(value)))
    assert conv.structure(wire, type(value)) == value


AT = datetime(2026, 11, 30, 14, 5, 6, 789, tzinfo=UTC)
EVENT = AuditEventOut(
    id=UUID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
    occurred_at=AT,
    action=AuditAction.ORDER_PAID,
    actor=None,
    pool_id=None,
    order_id=UUID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"),
    key_ids=[],
    details={"payment": "ref-1"},
)


def test_responses_write_ids_instants_and_enum_members_as_text() -> None:
    assert json_body(make_http_converter().unstructure(EVENT)) == (
        b'{"id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","occurredAt":"2026-11-30T14:05:06.000789Z",'
        b'"action":"order.paid","actor":null,"poolId":null,'
        b'"orderId":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c","keyIds":[],"details":{"payment":"ref-1"}}'
    )


def test_a_body_orjson_refuses_writes_them_the_same_way() -> None:
    event = attrs.evolve(EVENT, details={"payment": "half a pair \ud800"})
    written = json.loads(json_body(make_http_converter().unstructure(event)))
    assert written == {
        **json.loads(json_body(make_http_converter().unstructure(EVENT))),
        "details": {"payment": "half a pair \ud800"},
    }
