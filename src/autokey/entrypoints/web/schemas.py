"""Wire shapes of the JSON API (camelCase) and the one cattrs converter of the HTTP edge."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import attrs
import cattrs
from cattrs.cols import is_sequence, list_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from autokey.domain.model.keys import Key, PoolCounts, UploadReport
from autokey.domain.services.inventory import PoolView


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def make_http_converter() -> cattrs.Converter:
    """camelCase keys, ISO-8601 datetimes, string UUIDs; unknown request fields rejected."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    for scalar in (str, int, bool):
        conv.register_structure_hook(scalar, _strict(scalar))
    conv.register_structure_hook_factory(is_sequence, lambda t: _strict_list(t, conv))
    conv.register_unstructure_hook(datetime, lambda d: d.isoformat().replace("+00:00", "Z"))
    conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    conv.register_unstructure_hook(UUID, str)
    conv.register_structure_hook(UUID, lambda v, _: UUID(v))

    def renames(cls: type[Any]) -> dict[str, Any]:
        return {a.name: override(rename=to_camel(a.name)) for a in attrs.fields(cls)}

    conv.register_unstructure_hook_factory(
        attrs.has, lambda cls: make_dict_unstructure_fn(cls, conv, **renames(cls))
    )
    conv.register_structure_hook_factory(
        attrs.has,
        lambda cls: make_dict_structure_fn(
            cls, conv, _cattrs_forbid_extra_keys=True, **renames(cls)
        ),
    )
    return conv


def _strict(kind: type[Any]) -> Any:
    """cattrs coerces (5 -> "5"); on the wire a value must already have its JSON type."""

    def structure(value: Any, _: type[Any]) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}")
        return value

    return structure


def _strict_list(list_type: Any, conv: cattrs.Converter) -> Any:
    """A JSON array only: cattrs would happily iterate a string into a list of characters."""
    inner = list_structure_factory(list_type, conv)

    def structure(value: Any, target: Any) -> Any:
        if not isinstance(value, list):
            raise TypeError("expected an array")
        return inner(value, target)

    return structure


# ---- requests ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CreatePoolIn:
    name: str | None = None


@attrs.frozen(kw_only=True)
class UploadJsonIn:
    keys: list[str]


# ---- responses --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CountsOut:
    total_keys: int
    available_keys: int
    reserved_keys: int
    delivered_keys: int
    invalid_keys: int

    @classmethod
    def from_counts(cls, counts: PoolCounts) -> CountsOut:
        return cls(
            total_keys=counts.total,
            available_keys=counts.available,
            reserved_keys=counts.reserved,
            delivered_keys=counts.delivered,
            invalid_keys=counts.invalid,
        )


@attrs.frozen(kw_only=True)
class PoolOut(CountsOut):
    id: UUID
    name: str
    seller_id: UUID
    created_at: datetime

    @classmethod
    def of_view(cls, view: PoolView) -> PoolOut:
        counts = CountsOut.from_counts(view.counts)
        return cls(
            id=view.pool.id,
            name=view.pool.name,
            seller_id=view.pool.seller_id,
            created_at=view.pool.created_at,
            **attrs.asdict(counts),
        )


@attrs.frozen(kw_only=True)
class KeyOut:
    """Key metadata only: never plaintext, ciphertext or fingerprint."""

    id: UUID
    status: str
    created_at: datetime
    reserved_at: datetime | None
    delivered_at: datetime | None
    order_id: UUID | None

    @classmethod
    def of(cls, key: Key) -> KeyOut:
        return cls(
            id=key.id,
            status=key.status.value,
            created_at=key.created_at,
            reserved_at=key.reserved_at,
            delivered_at=key.delivered_at,
            order_id=key.order_id,
        )


@attrs.frozen(kw_only=True)
class LineErrorOut:
    line: int
    code: str


@attrs.frozen(kw_only=True)
class UploadReportOut(CountsOut):
    added: int
    duplicates: int
    invalid: int
    errors: list[LineErrorOut]
    errors_truncated: bool

    @classmethod
    def from_report(cls, report: UploadReport, counts: PoolCounts) -> UploadReportOut:
        return cls(
            added=report.added,
            duplicates=report.duplicates,
            invalid=report.invalid,
            errors=[LineErrorOut(line=e.line, code=e.code.value) for e in report.errors],
            errors_truncated=report.errors_truncated,
            **attrs.asdict(CountsOut.from_counts(counts)),
        )
