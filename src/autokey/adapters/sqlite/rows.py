"""The SQLite edge of the domain: column codecs and the one cattrs converter of this engine.

Storage types: UUIDs are 16-byte BLOBs (memcmp order is UUID order), instants are fixed-width
ISO-8601 UTC text with microseconds (text order is time order), amounts are `Decimal` text
(exact round trip), enums are their values, audit key ids and details are JSON text.

`make_row_converter()` builds the converter from cattrs' generated functions, with an explicit
hook per column codec. An entity unstructures to the named parameters of its INSERT/UPDATE
statements and structures back from a row, its columns named as its fields, except:
- a value of two parts (`Money`, `StoredResponse`) spreads over `<field>_<part>` columns,
  all NULL when the value is None;
- `Offer.recorded_stock_level` is the `stock_level` column;
- `AuditEvent.key_ids` and `details` are JSON text, `WebhookEndpoint.event_types` the
  values joined by spaces.
`params(entity)` and `entity_of(row, cls)` / `entities_of(rows, cls)` use it.
"""

from __future__ import annotations

import json
import sqlite3
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar
from uuid import UUID

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from autokey.domain.model.audit import AuditEvent
from autokey.domain.model.auth import ApiToken
from autokey.domain.model.idempotency import IdempotencyRecord, StoredResponse
from autokey.domain.model.ids import KeyId
from autokey.domain.model.keys import Key, KeyPool
from autokey.domain.model.offers import Money, Offer
from autokey.domain.model.orders import Order
from autokey.domain.model.outbound import Delivery, OutboundEventType, WebhookEndpoint
from autokey.domain.model.webhooks import WebhookEvent

T = TypeVar("T")

Params = dict[str, Any]

# Bounds for keyset cursors: the empty blob sorts before every id, 17 x 0xFF after every id.
BEFORE_ALL_IDS = b""
AFTER_ALL_IDS = b"\xff" * 17


# --- column codecs ------------------------------------------------------------------------
# Decoders take the target type as an unused second argument, so that cattrs calls them as
# structure hooks directly (no wrapper frame on the read path).


def uuid_col(value: UUID) -> bytes:
    return value.bytes


def opt_uuid_col(value: UUID | None) -> bytes | None:
    return None if value is None else value.bytes


def uuid_val(blob: bytes, _: object = None) -> UUID:
    return UUID(bytes=blob)


def opt_uuid_val(blob: bytes | None, _: object = None) -> UUID | None:
    return None if blob is None else UUID(bytes=blob)


def time_col(value: datetime) -> str:
    """Aware datetime -> '2026-01-01T12:00:00.000000+00:00'. Naive datetimes are refused:
    the store cannot know which zone they meant."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime cannot be stored; use an aware UTC datetime")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def opt_time_col(value: datetime | None) -> str | None:
    return None if value is None else time_col(value)


def time_val(text: str, _: object = None) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def opt_time_val(text: str | None, _: object = None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def decimal_col(value: Decimal) -> str:
    return str(value)


def decimal_val(text: str, _: object = None) -> Decimal:
    return Decimal(text)


_CODECS: Final[Mapping[type, tuple[Callable[[Any], Any], Callable[[Any, Any], Any]]]] = {
    UUID: (uuid_col, uuid_val),
    datetime: (time_col, time_val),
    Decimal: (decimal_col, decimal_val),
}
_NULLABLE_CODECS: Final[Mapping[type, tuple[Callable[[Any], Any], Callable[[Any, Any], Any]]]] = {
    UUID: (opt_uuid_col, opt_uuid_val),
    datetime: (opt_time_col, opt_time_val),
}


def cursor_after(after: UUID | None, *, descending: bool = False) -> bytes:
    """The bound for `id > ?` (or `id < ?` when descending) of a keyset page."""
    if after is not None:
        return after.bytes
    return AFTER_ALL_IDS if descending else BEFORE_ALL_IDS


# --- keys: the bulk upload path ----------------------------------------------------------


def key_insert_rows(keys: Sequence[Key]) -> list[tuple[Any, ...]]:
    """Positional values in `KEY_INSERT` column order, for the bulk upload path. The keys of
    an upload share their timestamps, so each distinct instant is encoded once."""
    times: dict[datetime | None, str | None] = {None: None}

    def encoded(value: datetime | None) -> str | None:
        if value not in times:
            times[value] = opt_time_col(value)
        return times[value]

    return [
        (
            key.id.bytes,
            key.pool_id.bytes,
            key.status.value,
            key.sealed,
            key.fingerprint,
            encoded(key.created_at),
            opt_uuid_col(key.order_id),
            encoded(key.reserved_at),
            encoded(key.delivered_at),
        )
        for key in keys
    ]


# --- the converter ------------------------------------------------------------------------

ENTITIES: Final = (
    ApiToken,
    KeyPool,
    Key,
    Offer,
    Order,
    WebhookEvent,
    IdempotencyRecord,
    AuditEvent,
    WebhookEndpoint,
    Delivery,
)
"""The entities stored one row each, in tables of their own."""


def _money_parts(money: Money) -> tuple[str, str]:
    return decimal_col(money.amount), money.currency


def _money_of(parts: tuple[str, str], _: object = None) -> Money:
    return Money(amount=Decimal(parts[0]), currency=parts[1])


def _response_parts(response: StoredResponse) -> tuple[int, bytes]:
    return response.status, response.body


def _response_of(parts: tuple[int, bytes], _: object = None) -> StoredResponse:
    return StoredResponse(status=parts[0], body=parts[1])


_SPREAD: Final[Mapping[type, tuple[tuple[str, ...], Callable[[Any], Any], Callable[..., Any]]]] = {
    Money: (("amount", "currency"), _money_parts, _money_of),
    StoredResponse: (("status", "body"), _response_parts, _response_of),
}
"""Values of two parts, stored over `<field>_<part>` columns: the parts, and their codec
(to and from a tuple of column values)."""


def _key_ids_text(key_ids: tuple[KeyId, ...]) -> str:
    return json.dumps([str(k) for k in key_ids])


def _key_ids_val(text: str, _: Any) -> tuple[KeyId, ...]:
    return tuple(KeyId(UUID(k)) for k in json.loads(text))


def _details_text(details: Mapping[str, str | int]) -> str:
    return json.dumps(dict(details), sort_keys=True)


def _event_types_text(event_types: frozenset[OutboundEventType]) -> str:
    return " ".join(sorted(t.value for t in event_types))


def _event_types_val(text: str, _: Any) -> frozenset[OutboundEventType]:
    return frozenset(OutboundEventType(t) for t in text.split())


_COLUMNS: Final[Mapping[type, Mapping[str, Any]]] = {
    Offer: {"recorded_stock_level": override(rename="stock_level")},
    AuditEvent: {
        "key_ids": override(unstruct_hook=_key_ids_text, struct_hook=_key_ids_val),
        "details": override(unstruct_hook=_details_text, struct_hook=lambda v, _: json.loads(v)),
    },
    WebhookEndpoint: {
        "event_types": override(unstruct_hook=_event_types_text, struct_hook=_event_types_val)
    },
}
"""Where a field's column differs from the rule (same name, the codec of its type)."""

_NEVER_UPDATED: Final[Mapping[type, Sequence[str]]] = {
    Key: ("pool_id", "sealed", "fingerprint", "created_at"),
}
"""Fields no statement takes by name: a key is inserted by the bulk path (`key_insert_rows`)
and only its state is saved, never its material."""


def _optional_of(kind: Any) -> Any:
    """`X` for `X | None`, else None."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 2:
        inner = [a for a in args if a is not type(None)]
        return inner[0] if len(inner) == 1 else None
    return None


def _spread_columns(cls: type) -> dict[str, tuple[str, ...]]:
    """The fields of `cls` holding a `_SPREAD` value (or None), with their columns."""
    hints = typing.get_type_hints(cls)
    found = {}
    for field in attrs.fields(cls):
        kind = _optional_of(hints[field.name]) or hints[field.name]
        if kind in _SPREAD:
            found[field.name] = tuple(f"{field.name}_{part}" for part in _SPREAD[kind][0])
    return found


def _spreading(
    unstructure: Callable[[Any], Params], spread: Mapping[str, tuple[str, ...]]
) -> Callable[[Any], Params]:
    def to_params(entity: Any) -> Params:
        params = unstructure(entity)
        for name, columns in spread.items():
            parts = params.pop(name)
            params.update(zip(columns, parts or (None,) * len(columns), strict=True))
        return params

    return to_params


def _gathering(
    structure: Callable[[Params, Any], T], spread: Mapping[str, tuple[str, ...]]
) -> Callable[[Params, Any], T]:
    def from_row(values: Params, kind: Any) -> T:
        """`values` is a fresh dict of one row: its part columns are replaced, in place, by
        the tuple of parts the value's hook builds from (None when they are all NULL)."""
        for name, columns in spread.items():
            parts = tuple([values.pop(column) for column in columns])
            values[name] = None if parts.count(None) == len(parts) else parts
        return structure(values, kind)

    return from_row


def make_row_converter() -> cattrs.Converter:
    """The SQLite row converter: codecs as hooks, one generated pair of functions per entity.
    Optional columns get a hook of their own (NULL, else the inner codec), resolved once."""
    conv = cattrs.Converter(detailed_validation=False)
    for kind, (_, encode, decode) in _SPREAD.items():
        conv.register_unstructure_hook(kind, encode)
        conv.register_structure_hook(kind, decode)
    for kind, (encode, decode) in _CODECS.items():
        conv.register_unstructure_hook(kind, encode)
        conv.register_structure_hook(kind, decode)
    conv.register_unstructure_hook_func(lambda t: _base(t) is UUID, uuid_col)
    conv.register_structure_hook_func(lambda t: _base(t) is UUID, uuid_val)
    conv.register_unstructure_hook_factory(
        lambda t: _optional_of(t) is not None, lambda t: _optional_out(conv, t)
    )
    conv.register_structure_hook_factory(
        lambda t: _optional_of(t) is not None, lambda t: _optional_in(conv, t)
    )
    for cls in ENTITIES:
        columns = _COLUMNS.get(cls, {})
        unwritten = {name: override(omit=True) for name in _NEVER_UPDATED.get(cls, ())}
        written: dict[str, Any] = {**columns, **unwritten}
        unstructure = make_dict_unstructure_fn(cls, conv, **written)
        structure = make_dict_structure_fn(cls, conv, **columns)
        spread = _spread_columns(cls)
        conv.register_unstructure_hook(
            cls, _spreading(unstructure, spread) if spread else unstructure
        )
        conv.register_structure_hook(cls, _gathering(structure, spread) if spread else structure)
    return conv


def _base(kind: Any) -> Any:
    """The type a NewType stands for (itself for any other type)."""
    return getattr(kind, "__supertype__", kind)


def _optional_out(conv: cattrs.Converter, kind: Any) -> Callable[[Any], Any]:
    inner_type = _optional_of(kind)
    if _base(inner_type) in _NULLABLE_CODECS:
        return _NULLABLE_CODECS[_base(inner_type)][0]
    inner = conv.get_unstructure_hook(inner_type)
    return lambda v: None if v is None else inner(v)


def _optional_in(conv: cattrs.Converter, kind: Any) -> Callable[[Any, Any], Any]:
    inner_type = _optional_of(kind)
    if _base(inner_type) in _NULLABLE_CODECS:
        return _NULLABLE_CODECS[_base(inner_type)][1]
    inner = conv.get_structure_hook(inner_type)
    if isinstance(inner, type):  # cattrs calls a class (an enum, bytes) with the value only
        return lambda v, _: None if v is None else inner(v)
    return lambda v, _: None if v is None else inner(v, inner_type)


_ROWS: Final = make_row_converter()


def params(entity: Any) -> Params:
    """The named parameters of the entity's INSERT/UPDATE statements."""
    found: Params = _ROWS.unstructure(entity)
    return found


def entity_of(row: sqlite3.Row, cls: type[T]) -> T:
    return _ROWS.structure(dict(zip(row.keys(), row, strict=False)), cls)


def entities_of(rows: Iterable[sqlite3.Row], cls: type[T]) -> list[T]:
    found = list(rows)
    if not found:
        return []
    columns = found[0].keys()
    structure = _ROWS.get_structure_hook(cls)
    return [structure(dict(zip(columns, row, strict=False)), cls) for row in found]
