from __future__ import annotations

import json
from decimal import Decimal

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autokey.adapters.g2a.converter import decode_json, make_g2a_converter
from autokey.domain.model.marketplace import (
    MarketplaceOrder,
    MarketplaceProduct,
    ProductCategory,
    ProductPage,
)

texts = st.text(min_size=1, max_size=12)
prices = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False)
optional_texts = st.none() | texts
products = st.builds(
    MarketplaceProduct,
    id=st.integers(min_value=1, max_value=10**15).map(str),
    name=texts,
    min_price=prices,
    qty=st.integers(min_value=0, max_value=10_000),
    available_to_buy=st.booleans(),
    currency=optional_texts,
    type=optional_texts,
    slug=optional_texts,
    retail_min_price=st.none() | prices,
    retail_min_base_price=st.none() | prices,
    region=optional_texts,
    platform=optional_texts,
    developer=optional_texts,
    publisher=optional_texts,
    release_date=optional_texts,
    updated_at=optional_texts,
    thumbnail=optional_texts,
    categories=st.lists(st.builds(ProductCategory, id=texts, name=texts), max_size=3).map(tuple),
)
pages = st.builds(
    ProductPage,
    total=st.integers(min_value=0, max_value=1000),
    page=st.integers(min_value=1, max_value=50),
    items=st.lists(products, max_size=4).map(tuple),
)


@given(pages)
def test_product_pages_round_trip_through_the_wire_format(page: ProductPage) -> None:
    conv = make_g2a_converter()
    wire = conv.unstructure(page)
    assert "docs" in wire
    # Through real JSON text too, as G2A sends it.
    assert conv.structure(wire, ProductPage) == page
    text = json.dumps(wire, default=str).encode()
    assert conv.structure(decode_json(text), ProductPage) == page


@given(st.builds(MarketplaceOrder, order_id=texts, price=prices, currency=texts))
def test_orders_round_trip(order: MarketplaceOrder) -> None:
    conv = make_g2a_converter()
    assert conv.structure(conv.unstructure(order), MarketplaceOrder) == order


def test_g2a_fixture_product_maps_to_the_domain_and_ignores_unknown_fields() -> None:
    body = (
        b'{"total": 1, "page": 1, "docs": [{"id": "10000068865001", "name": "BF1", '
        b'"minPrice": 25.25, "qty": 101, "availableToBuy": true, "platform": "Origin", '
        b'"brandNewField": {"x": 1}, "retailMinBasePrice": 30, '
        b'"categories": [{"id": 189, "name": "Games"}]}]}'
    )
    page = make_g2a_converter().structure(decode_json(body), ProductPage)
    product = page.items[0]
    assert product.min_price == Decimal("25.25")
    assert product.qty == 101
    assert product.platform == "Origin"
    assert product.retail_min_base_price == Decimal(30)
    assert product.region is None
    assert product.categories == (ProductCategory(id="189", name="Games"),)


@pytest.mark.parametrize(
    "doc",
    [
        {"id": "1", "name": "x", "qty": 1, "availableToBuy": True},  # no minPrice
        {"id": "1", "name": "x", "minPrice": "abc", "qty": 1, "availableToBuy": True},
        {"id": "1", "name": "x", "minPrice": 1, "qty": "1", "availableToBuy": True},
        {"id": "1", "name": "x", "minPrice": 1, "qty": 1, "availableToBuy": "yes"},
        {"id": {"a": 1}, "name": "x", "minPrice": 1, "qty": 1, "availableToBuy": True},
    ],
)
def test_malformed_products_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises((cattrs.BaseValidationError, ArithmeticError, TypeError, ValueError)):
        make_g2a_converter().structure({"total": 1, "page": 1, "docs": [doc]}, ProductPage)
