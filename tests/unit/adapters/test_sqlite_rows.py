"""The SQLite row converter round-trips every entity through a real `sqlite3.Row`."""

from __future__ import annotations

import enum
import re
import sqlite3
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from autokey.adapters.sqlite import rows, sql
from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.errors import InvalidInput
from autokey.domain.model.idempotency import IdempotencyRecord
from autokey.domain.model.keys import Key, KeyPool
from autokey.domain.model.offers import MAX_LOW_STOCK_THRESHOLD, Offer
from autokey.domain.model.orders import Order
from autokey.domain.model.outbound import Delivery, WebhookEndpoint
from autokey.domain.model.webhooks import WebhookEvent

INSERTS: Mapping[type, str] = {
    ApiToken: sql.TOKEN_INSERT,
    KeyPool: sql.POOL_INSERT,
    Offer: sql.OFFER_INSERT,
    Order: sql.ORDER_INSERT,
    WebhookEvent: sql.EVENT_ADD,
    IdempotencyRecord: sql.IDEMPOTENCY_INSERT,
    AuditEvent: sql.AUDIT_INSERT,
    WebhookEndpoint: sql.ENDPOINT_INSERT,
    Delivery: sql.DELIVERY_INSERT,
}
"""Every entity the converter writes by name (keys go in by the bulk path)."""

KEY_COLUMNS = re.findall(r"\w+", sql.KEY_INSERT.split("(", 1)[1].split(")", 1)[0])

# Words, so that the model's text rules pass; the codecs treat text as opaque.
texts = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=20)
int64s = st.integers(-(2**63), 2**63 - 1)


def values_of(kind: Any) -> st.SearchStrategy[Any]:
    """Any value of a domain field type that the column can hold."""
    args = typing.get_args(kind)
    if type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return st.none() | values_of(inner)
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(values_of(a) for a in args))
    if origin is tuple:
        return st.lists(values_of(args[0]), max_size=3).map(tuple)
    if origin is frozenset:
        return st.frozensets(values_of(args[0]))
    if origin in (Mapping, typing.get_origin(Mapping[str, int])):
        return st.dictionaries(texts, values_of(args[1]), max_size=3)
    if getattr(kind, "__supertype__", None) is not None:
        return values_of(kind.__supertype__).map(kind)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return st.sampled_from(kind)
    if attrs.has(kind):
        return entities(kind)
    simple: Mapping[Any, st.SearchStrategy[Any]] = {
        UUID: st.uuids(),
        datetime: st.datetimes(timezones=st.just(UTC)),
        Decimal: st.decimals(allow_nan=False, allow_infinity=False),
        int: int64s,
        str: texts,
        bytes: st.binary(),
    }
    return simple[kind]


FIELDS: Mapping[str, st.SearchStrategy[Any]] = {
    "low_stock_threshold": st.none() | st.integers(0, MAX_LOW_STOCK_THRESHOLD),
}
"""Fields whose values the model bounds more narrowly than their type."""


def entities(cls: type) -> st.SearchStrategy[Any]:
    """Valid instances of `cls`: drawn field by field, those the model refuses rejected."""
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: FIELDS[f.name] if f.name in FIELDS else values_of(hints[f.name])
        for f in attrs.fields(cls)
    }

    def build(values: dict[str, Any]) -> Any:
        try:
            return cls(**values)
        except InvalidInput:
            reject()

    return st.fixed_dictionaries(fields).map(build)


def as_row(values: Mapping[str, Any] | tuple[Any, ...], columns: list[str]) -> sqlite3.Row:
    """The values bound to a statement, read back as SQLite hands a row to the adapter."""
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    if isinstance(values, tuple):
        select = ", ".join(f"? AS {c}" for c in columns)
    else:
        select = ", ".join(f":{c} AS {c}" for c in columns)
    row: sqlite3.Row = db.execute(f"SELECT {select}", values).fetchone()
    db.close()
    return row


@pytest.mark.parametrize("cls", list(INSERTS), ids=lambda c: c.__name__)
@given(data=st.data())
def test_an_entity_round_trips_through_its_row(cls: type, data: st.DataObject) -> None:
    entity = data.draw(entities(cls))
    params = rows.params(entity)
    assert set(re.findall(r":(\w+)", INSERTS[cls])) <= set(params)
    assert rows.entity_of(as_row(params, list(params)), cls) == entity


@given(entities(Key))
def test_a_key_round_trips_through_the_bulk_insert_row(key: Key) -> None:
    (values,) = rows.key_insert_rows([key])
    assert rows.entities_of([as_row(values, KEY_COLUMNS)], Key) == [key]


@given(entities(Key))
def test_a_key_is_saved_by_its_state_only(key: Key) -> None:
    assert set(rows.params(key)) == set(re.findall(r":(\w+)", sql.KEY_SAVE))


def test_every_entity_of_the_converter_is_round_tripped() -> None:
    assert {*INSERTS, Key} == set(rows.ENTITIES)
