"""The PostgreSQL edge of the domain: one cattrs converter between rows and entities.

psycopg already loads and dumps the column types (uuid, timestamptz, numeric, bytea, jsonb
and arrays) as the Python values the model holds, so the converter only renames, builds the
values that span several columns (a `Money` is an amount and a currency column) and turns
enum values back into members. Rows are structured from mappings of column names (the row
factory below names each column); entities are unstructured into the named parameters of
their INSERT and UPDATE statements.

Each entity's functions are generated once by cattrs (`make_dict_structure_fn`), so the
per-row cost stays that of the hand-written positional mapping they replace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NewType, TypeVar
from uuid import UUID

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from psycopg import AsyncCursor
from psycopg.rows import AsyncRowFactory, RowMaker
from psycopg.types.json import Jsonb

from autokey.adapters import json_text
from autokey.adapters.merchant_rows import lines_from, lines_value
from autokey.domain.model import ids, merchant
from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.idempotency import IdempotencyRecord, StoredResponse
from autokey.domain.model.keys import Key, KeyPool, PinnedIndexKey
from autokey.domain.model.offers import Money, Offer
from autokey.domain.model.orders import Order
from autokey.domain.model.outbound import Delivery, WebhookEndpoint
from autokey.domain.model.webhooks import WebhookEvent

E = TypeVar("E")
Params = dict[str, Any]
Row = dict[str, Any]

_IDS: list[Any] = [kind for kind in vars(ids).values() if isinstance(kind, NewType)]
_AS_LOADED: frozenset[Any] = frozenset(
    kind
    for loaded in (UUID, datetime, Decimal, str, int, *_IDS)
    for kind in (loaded, loaded | None)
)
"""Types psycopg loads as the model holds them, structured as they come: matched exactly, so
an enum (a `str` subclass) still gets its member."""


def _money_columns(prefix: str) -> tuple[Callable[[Row], Money | None], Callable[[Any], Params]]:
    """How `Money` spans `<prefix>_amount` and `<prefix>_currency` (both NULL for no money)."""
    amount, currency = f"{prefix}_amount", f"{prefix}_currency"

    def read(row: Row) -> Money | None:
        value = row[amount]
        return None if value is None else Money(amount=value, currency=row[currency])

    def write(money: Money | None) -> Params:
        if money is None:
            return {amount: None, currency: None}
        return {amount: money.amount, currency: money.currency}

    return read, write


_PRICE = _money_columns("price")
_MAX_PRICE = _money_columns("max_price")
_UNIT_PRICE = _money_columns("unit_price")


def _response_of(row: Row) -> StoredResponse | None:
    status = row["response_status"]
    return None if status is None else StoredResponse(status=status, body=row["response_body"])


def _response_params(response: StoredResponse | None) -> Params:
    if response is None:
        return {"response_status": None, "response_body": None}
    return {"response_status": response.status, "response_body": response.body}


_ONE_COLUMN_PER_ATTRIBUTE: tuple[type[Any], ...] = (
    ApiToken,
    KeyPool,
    Key,
    WebhookEvent,
    WebhookEndpoint,
    Delivery,
    merchant.MerchantCredential,
    merchant.MerchantAccessToken,
    merchant.ReturnedKey,
    merchant.MerchantNotification,
    merchant.G2AOfferLink,
)
"""Entities stored one attribute per column of the same name (the others are below)."""


def make_row_converter() -> cattrs.Converter:
    """The converter between PostgreSQL rows (column name -> loaded value) and entities."""
    c = cattrs.Converter(detailed_validation=False)

    def passthrough(value: Any, _: Any) -> Any:
        return value

    c.register_structure_hook_func(_AS_LOADED.__contains__, passthrough)
    # Generated once, here, rather than on a first row.
    for plain in _ONE_COLUMN_PER_ATTRIBUTE:
        c.register_structure_hook(plain, make_dict_structure_fn(plain, c))

    def spanning(
        cls: type[E],
        spans: dict[str, Callable[[Row], Any]],
        **overrides: Any,
    ) -> None:
        """Structure `cls` after building its multi-column attributes from their columns."""
        generated = make_dict_structure_fn(cls, c, **overrides)
        if not spans:
            c.register_structure_hook(cls, generated)
            return

        def structure(row: Row, _: Any) -> E:
            for attribute, read in spans.items():
                row[attribute] = read(row)
            return generated(row, cls)

        c.register_structure_hook(cls, structure)

    passed = override(struct_hook=passthrough)
    spanning(
        Offer,
        {"price": _PRICE[0], "max_price": _MAX_PRICE[0]},
        price=passed,
        max_price=passed,
        recorded_stock_level=override(rename="stock_level"),
    )
    spanning(Order, {"unit_price": _UNIT_PRICE[0]}, unit_price=passed)
    spanning(IdempotencyRecord, {"response": _response_of}, response=passed)
    spanning(AuditEvent, {}, details=passed)
    spanning(merchant.Reservation, {"lines": lambda row: lines_from(row["lines"])}, lines=passed)
    spanning(PinnedIndexKey, {}, id=override(rename="key_id"))

    def flattening(
        cls: type[E],
        spans: dict[str, Callable[[Any], Params]],
        **overrides: Any,
    ) -> None:
        """Unstructure `cls` with each multi-column attribute spread over its columns."""
        omitted: dict[str, Any] = {name: override(omit=True) for name in spans}
        generated = make_dict_unstructure_fn(cls, c, **omitted, **overrides)

        def unstructure(entity: E) -> Params:
            params: Params = generated(entity)
            for attribute, write in spans.items():
                params.update(write(getattr(entity, attribute)))
            return params

        c.register_unstructure_hook(cls, unstructure)

    flattening(
        Offer,
        {"price": _PRICE[1], "max_price": _MAX_PRICE[1]},
        recorded_stock_level=override(rename="stock_level"),
    )
    flattening(Order, {"unit_price": _UNIT_PRICE[1]})
    flattening(IdempotencyRecord, {"response": _response_params})
    flattening(
        WebhookEndpoint,
        {"event_types": lambda types: {"event_types": sorted(t.value for t in types)}},
    )
    flattening(merchant.Reservation, {"lines": lambda lines: {"lines": Jsonb(lines_value(lines))}})
    flattening(PinnedIndexKey, {}, id=override(rename="key_id"))
    return c


ROWS = make_row_converter()


_ROW_FACTORIES: dict[type[Any], AsyncRowFactory[Any]] = {}


def entity_rows(cls: type[E]) -> AsyncRowFactory[E]:
    """A psycopg row factory that structures each row into a `cls` (one per class)."""
    factory = _ROW_FACTORIES.get(cls)
    if factory is None:
        factory = _ROW_FACTORIES[cls] = _row_factory(cls)
    return factory


def _row_factory(cls: type[E]) -> AsyncRowFactory[E]:
    structure = ROWS.get_structure_hook(cls)

    def factory(cursor: AsyncCursor[Any]) -> RowMaker[E]:
        # Read from the result, as psycopg's own dict_row does: `cursor.description` would
        # build a Column object per column on every statement of the hot path.
        names: list[str] = []
        if (result := cursor.pgresult) is not None:
            names = [(result.fname(i) or b"").decode() for i in range(result.nfields)]

        def make(values: Sequence[Any]) -> E:
            # One value per column, so no strict zip.
            return structure(dict(zip(names, values)), cls)  # type: ignore[no-any-return]  # noqa: B905

        return make

    return factory


def params(entity: object) -> Params:
    """The named statement parameters of `entity`, one per column."""
    unstructured: Params = ROWS.unstructure(entity)
    return unstructured


def json_rows(rows: Iterable[Mapping[str, object]]) -> str:
    """Rows as one JSON array, the parameter of a `jsonb_to_recordset` statement: ids,
    instants and amounts as their text (which PostgreSQL reads back exactly), a jsonb column's
    value as itself."""
    return json_text.dumps(list(rows), _json_value).decode()


def _json_value(value: object) -> object:
    return value.obj if isinstance(value, Jsonb) else str(value)


def id_array(ids: Iterable[UUID]) -> str:
    """Ids as one `uuid[]` literal: a text parameter, for which psycopg sets up no list dumper
    (cast it: `%s::uuid[]`)."""
    return "{" + ",".join(str(i) for i in ids) + "}"
