"""The G2A wire edge: one cattrs converter between G2A's JSON and our domain values.

Unknown fields are ignored, missing optional ones become None, and anything else that does
not match raises (the client turns that into `UpstreamProtocolError`). Bodies are decoded
with `parse_float=Decimal`, so prices never pass through binary floats."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from autokey.domain.model.marketplace import MarketplaceProduct, ProductPage


@attrs.frozen(kw_only=True)
class TokenWire:
    access_token: str = attrs.field(repr=False)
    token_type: str
    expires_in: int


@attrs.frozen(kw_only=True)
class PaymentWire:
    status: bool
    transaction_id: str | None = None


@attrs.frozen(kw_only=True)
class OrderDetailsWire:
    status: str
    price: Decimal
    currency: str


@attrs.frozen(kw_only=True)
class KeyWire:
    key: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class JobRef:
    job_id: str


@attrs.frozen(kw_only=True)
class JobAccepted:
    data: JobRef


@attrs.frozen(kw_only=True)
class JobElementWire:
    status: str | None = None
    code: str | None = None


@attrs.frozen(kw_only=True)
class JobData:
    status: str
    elements: list[JobElementWire] = attrs.Factory(list)


@attrs.frozen(kw_only=True)
class JobWire:
    data: JobData


@attrs.frozen(kw_only=True)
class ErrorWire:
    status: str | None = None
    code: str | None = None
    message: str | None = None


def decode_json(body: bytes) -> Any:
    """Parse a G2A body; numbers with a fraction become Decimal. Raises ValueError."""
    return json.loads(body.decode("utf-8"), parse_float=Decimal)


def _strict_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # G2A ids are strings but some payloads carry them as numbers
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _strict_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


def _decimal(value: Any, _: type) -> Decimal:
    if isinstance(value, bool):
        raise TypeError("expected a number, got bool")
    if isinstance(value, Decimal | int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        result = Decimal(value)  # raises decimal.InvalidOperation (an ArithmeticError)
    else:
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError("number is not finite")
    return result


def make_g2a_converter() -> cattrs.Converter:
    """A fresh converter for the G2A edge (never share a global one)."""
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(Decimal, _decimal)
    conv.register_unstructure_hook(Decimal, lambda d: d)

    rename = override
    conv.register_structure_hook(
        MarketplaceProduct,
        make_dict_structure_fn(
            MarketplaceProduct,
            conv,
            min_price=rename(rename="minPrice"),
            available_to_buy=rename(rename="availableToBuy"),
            retail_min_base_price=rename(rename="retailMinBasePrice"),
        ),
    )
    conv.register_unstructure_hook(
        MarketplaceProduct,
        make_dict_unstructure_fn(
            MarketplaceProduct,
            conv,
            min_price=rename(rename="minPrice"),
            available_to_buy=rename(rename="availableToBuy"),
            retail_min_base_price=rename(rename="retailMinBasePrice"),
        ),
    )
    conv.register_structure_hook(
        ProductPage, make_dict_structure_fn(ProductPage, conv, items=rename(rename="docs"))
    )
    conv.register_unstructure_hook(
        ProductPage, make_dict_unstructure_fn(ProductPage, conv, items=rename(rename="docs"))
    )
    conv.register_structure_hook(
        JobRef, make_dict_structure_fn(JobRef, conv, job_id=rename(rename="jobId"))
    )
    conv.register_unstructure_hook(
        JobRef, make_dict_unstructure_fn(JobRef, conv, job_id=rename(rename="jobId"))
    )
    return conv
