"""The OpenAPI document stays true to the router, the wire classes and the problem table."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import jsonschema_rs
import pytest

from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.errors import WebhookRejected
from autokey.domain.model.orders import OrderStatus, UpstreamState
from autokey.domain.model.webhooks import Rejection
from autokey.entrypoints.web import schemas
from autokey.entrypoints.web.openapi import (
    OPENAPI_PATH,
    SchemaBuilder,
    build_document,
)
from autokey.entrypoints.web.problems import (
    ERROR_TABLE,
    HTTP_CODES,
    INTERNAL,
    UNREADABLE_BODY,
    classify,
)
from tests.http import Api, documented_operations, route_keys, running_api

EXEMPT = {
    ("GET", "/docs/{name}"): "Swagger UI's static files; /docs itself is documented",
    ("GET", "/console"): "the seller console page, a UI rather than an API",
    ("GET", "/console/{asset}"): "the seller console's static files",
    **{
        (method, "/g2a/merchant" + path): "G2A's merchant stock contract, specified by G2A"
        for method, path in (
            ("GET", "/oauth/token"),
            ("POST", "/oauth/token"),
            ("POST", "/reservation"),
            ("PUT", "/reservation/{reservation_id}"),
            ("DELETE", "/reservation/{reservation_id}"),
            ("POST", "/order"),
            ("GET", "/order/{order_id}/inventory"),
            ("DELETE", "/order/{order_id}/inventory"),
            ("POST", "/notifications"),
            ("GET", "/healthcheck"),
        )
    },
}
"""Routes deliberately left out of the document, each with its reason."""


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_api(MemoryStore()) as running:
        yield running


async def _document(api: Api) -> dict[str, Any]:
    response = await api.client.get(OPENAPI_PATH)
    assert response.status == 200
    assert response.content_type == "application/json"
    document: dict[str, Any] = await response.json()
    return document


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in document["paths"].items() for m in item}


async def test_every_route_is_documented_and_every_documented_operation_exists(api: Api) -> None:
    routes = route_keys(api.client.app.router)
    documented = _documented(await _document(api))
    undocumented = routes - documented - EXEMPT.keys()
    assert not undocumented, (
        f"routes without an OpenAPI operation: {sorted(undocumented)}; declare one with "
        "@Operation(...) under the route decorator (or, for a non-API route, add it to EXEMPT)"
    )
    assert documented <= routes, f"documented but not routed: {sorted(documented - routes)}"


def test_every_operation_has_a_distinct_operation_id() -> None:
    document = build_document(documented_operations())
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == len(documented_operations())


async def test_document_is_openapi_3_1_with_bearer_security(api: Api) -> None:
    document = await _document(api)
    assert document["openapi"] == "3.1.0"
    bearer = dict(document["components"]["securitySchemes"]["bearer"])
    assert "autokey token create --role" in bearer.pop("description")
    assert bearer == {"type": "http", "scheme": "bearer"}
    create_pool = document["paths"]["/key-pools"]["post"]
    assert create_pool["security"] == [{"bearer": []}]
    assert document["paths"]["/health"]["get"]["security"] == []


async def test_every_reference_resolves(api: Api) -> None:
    document = await _document(api)

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(document):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert target, ref


def problem_codes(document: dict[str, Any]) -> set[str]:
    """Every problem code the document names."""
    found: set[str] = set()
    for item in document["paths"].values():
        for op in item.values():
            for response in op["responses"].values():
                for media in response.get("content", {}).values():
                    for part in media["schema"].get("allOf", [])[1:]:
                        found.update(part["properties"]["code"]["enum"])
    return found


def _answered() -> dict[str, int]:
    """Code -> status of every problem the middleware answers outside the merchant API."""
    kinds = [kind for _, kind in ERROR_TABLE] + [INTERNAL, UNREADABLE_BODY]
    kinds += [classify(WebhookRejected(reason=reason)) for reason in Rejection]
    by_aiohttp = {code: status for status, code in HTTP_CODES.items()}
    return {kind.code: kind.status for kind in kinds} | by_aiohttp


def test_problem_codes_come_from_the_problem_table_with_their_status() -> None:
    document = build_document(documented_operations())
    answered = _answered()
    assert problem_codes(document) <= answered.keys()
    for path, item in document["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                for media in response.get("content", {}).values():
                    for part in media["schema"].get("allOf", [])[1:]:
                        for code in part["properties"]["code"]["enum"]:
                            assert str(answered[code]) == status, (method, path, code)


def test_authenticated_operations_document_401_and_403() -> None:
    operations = documented_operations()
    document = build_document(operations)
    for (method, path), op in operations.items():
        responses = document["paths"][path][method.lower()]["responses"]
        if op.authenticated:
            assert {"401", "403"} <= responses.keys(), (method, path)
        assert "default" in responses


def test_schemas_are_generated_from_every_field_of_the_wire_classes() -> None:
    builder = SchemaBuilder()
    for cls in (schemas.PoolOut, schemas.OrderOut, schemas.OfferDraftIn, schemas.AuditEventOut):
        builder.ref(cls, request=cls.__name__.endswith("In"))
        schema = builder.components[cls.__name__]
        assert set(schema["properties"]) == {schemas.to_camel(f.name) for f in attrs.fields(cls)}
    order = builder.components["OrderOut"]["properties"]
    assert order["paidAt"] == {"type": ["string", "null"], "format": "date-time"}
    assert order["keys"] == {
        "type": ["array", "null"],
        "items": {"$ref": "#/components/schemas/DeliveredKeyOut"},
    }
    draft = builder.components["OfferDraftIn"]
    assert set(draft["required"]) == {"title", "price", "deliveryType"}
    assert order["status"] == {"type": "string", "enum": [s.value for s in OrderStatus]}
    assert order["upstreamState"] == {
        "type": ["string", "null"],
        "enum": [*(s.value for s in UpstreamState), None],
    }


async def test_real_responses_validate_against_the_document(api: Api) -> None:
    document = await _document(api)
    seller = await api.token()
    created = await api.client.post("/key-pools", json={"name": "Steam"}, headers=seller)
    body = await created.json()
    schema = {
        "$ref": "#/components/schemas/PoolOut",
        "components": document["components"],
    }
    jsonschema_rs.validate(schema, body)
    missing = await api.client.get(f"/key-pools/{uuid.uuid4()}", headers=seller)
    problem = document["paths"]["/key-pools/{pool_id}"]["get"]["responses"]["404"]
    problem_schema = problem["content"]["application/problem+json"]["schema"]
    jsonschema_rs.validate(
        {**problem_schema, "components": document["components"]}, await missing.json()
    )


async def test_docs_page_loads_packaged_swagger_ui_without_inline_script(api: Api) -> None:
    page = await api.client.get("/docs")
    assert page.status == 200
    html = await page.text()
    assert "<script>" not in html.replace(" ", "")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for src in ("/docs/swagger-ui-bundle.js", "/docs/init.js", "/docs/swagger-ui.css"):
        assert src in html
        asset = await api.client.get(src)
        assert asset.status == 200, src
        assert len(await asset.read()) > 100
    init = await (await api.client.get("/docs/init.js")).text()
    assert OPENAPI_PATH in init


async def test_docs_serve_only_the_listed_files(api: Api) -> None:
    for name in ("index.j2", "..%2Fdocs.py", "swagger-ui-bundle.js.map", "nope.js"):
        response = await api.client.get(f"/docs/{name}")
        assert response.status == 404, name
