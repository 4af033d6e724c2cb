"""The PostgreSQL row converter round-trips every entity the store keeps: an entity becomes
the named parameters of its INSERT, the row PostgreSQL would give back for them is read
through the row factory, and the same entity comes out."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from autokey.adapters.postgres.rows import entity_rows, params
from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.idempotency import IdempotencyRecord, StoredResponse
from autokey.domain.model.ids import PoolId
from autokey.domain.model.keys import Key, KeyPool, PinnedIndexKey
from autokey.domain.model.merchant import (
    G2AOfferLink,
    MerchantAccessToken,
    MerchantCredential,
    MerchantNotification,
    Reservation,
    ReservationLine,
    ReturnedKey,
)
from autokey.domain.model.offers import DeliveryType, Money, Offer
from autokey.domain.model.orders import Order
from autokey.domain.model.outbound import Delivery, WebhookEndpoint
from autokey.domain.model.webhooks import WebhookEvent

ENTITIES: list[Any] = [
    ApiToken,
    KeyPool,
    Key,
    Offer,
    Order,
    IdempotencyRecord,
    WebhookEvent,
    WebhookEndpoint,
    Delivery,
    PinnedIndexKey,
    MerchantCredential,
    MerchantAccessToken,
    Reservation,
    ReturnedKey,
    MerchantNotification,
    G2AOfferLink,
]


for resolved in (*ENTITIES, AuditEvent, ReservationLine, StoredResponse):
    attrs.resolve_types(resolved)

money = st.builds(
    Money,
    amount=st.decimals(min_value=0, max_value=10**9, places=2).map(Decimal),
    currency=st.sampled_from(["EUR", "USD", "GBP"]),
)
instants = st.datetimes(timezones=st.just(UTC))
names = st.text(alphabet="abcdefghij XYZ", min_size=1, max_size=20).filter(str.strip)
st.register_type_strategy(Money, money)
st.register_type_strategy(KeyPool, st.builds(KeyPool, name=names))
st.register_type_strategy(
    Offer,
    st.builds(
        Offer,
        title=names,
        delivery_type=st.just(DeliveryType.G2A),
        key_pool_id=st.uuids().map(PoolId),
        g2a_product_id=st.from_regex(r"[1-9][0-9]{13}", fullmatch=True),
        max_price=money,
        low_stock_threshold=st.none() | st.integers(0, 10),
    )
    | st.builds(
        Offer,
        title=names,
        delivery_type=st.just(DeliveryType.MANUAL),
        key_pool_id=st.none(),
        g2a_product_id=st.none(),
        max_price=st.none(),
    ),
)
details = st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.integers(), max_size=3)


class _Result:
    """What the row factory reads of a result: the names of its columns."""

    def __init__(self, names: list[str]) -> None:
        self._names = [n.encode() for n in names]
        self.nfields = len(names)

    def fname(self, index: int) -> bytes:
        return self._names[index]


class _Cursor:
    def __init__(self, names: list[str]) -> None:
        self.pgresult = _Result(names)


def _loaded(value: Any) -> Any:
    """The value psycopg loads back for a parameter: jsonb comes back decoded."""
    return value.obj if isinstance(value, Jsonb) else value


def _round_trip(entity: Any) -> Any:
    columns = params(entity)
    make = entity_rows(type(entity))(_Cursor(list(columns)))  # type: ignore[arg-type]
    back = make([_loaded(v) for v in columns.values()])
    # Equal is not enough: a StrEnum equals its value, so check each field's type too.
    for field in attrs.fields(type(entity)):
        assert type(getattr(back, field.name)) is type(getattr(entity, field.name)), field.name
    return back


@pytest.mark.parametrize("cls", ENTITIES, ids=lambda c: c.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_every_entity_round_trips_through_its_statement_parameters_and_row(
    cls: type[Any], data: st.DataObject
) -> None:
    entity = data.draw(st.from_type(cls))
    assert _round_trip(entity) == entity


@given(
    st.builds(
        AuditEvent, occurred_at=instants, details=details, key_ids=st.lists(st.uuids()).map(tuple)
    )
)
def test_an_audit_event_round_trips(event: AuditEvent) -> None:
    assert _round_trip(event) == event
