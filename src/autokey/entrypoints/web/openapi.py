"""The OpenAPI 3.1 document, served at `GET /api/openapi.json`.

It is collected from the app's router: every handler that declares an `Operation` (see
`operations.py`) is an operation of the document. Body schemas are generated from the attrs
wire classes of `schemas.py` (the classes the HTTP converter really (un)structures), and each
problem's status and code from the problem table of `problems.py`, so neither can drift.
`tests/unit/web/test_openapi.py` fails when a route declares no operation.
"""

from __future__ import annotations

import enum
import functools
import json
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Union
from uuid import UUID

import attrs
from aiohttp import web

from autokey.domain.model import errors as e
from autokey.entrypoints.web import schemas as s
from autokey.entrypoints.web.operations import METADATA, PAGED, Operation, PageOf, Raised
from autokey.entrypoints.web.problems import (
    ERROR_TABLE,
    HTTP_CODES,
    INTERNAL,
    PROBLEM_CONTENT_TYPE,
    ProblemKind,
    classify,
)

OPENAPI_PATH = "/api/openapi.json"
routes = web.RouteTableDef()
AUTHENTICATED = (e.Unauthenticated, e.Forbidden, e.RateLimited, e.StoreUnavailable)


def problem_kind(raised: Raised) -> ProblemKind:
    """The status and code the problem middleware answers `raised` with."""
    if isinstance(raised, ProblemKind):
        return raised
    if isinstance(raised, Exception):
        return classify(raised)
    if issubclass(raised, web.HTTPException):  # answered by aiohttp itself
        return ProblemKind(raised.status_code, HTTP_CODES[raised.status_code], "")
    return next((kind for cls, kind in ERROR_TABLE if issubclass(raised, cls)), INTERNAL)


# ---- JSON Schema from attrs classes ----------------------------------------------------


class SchemaBuilder:
    """Turns attrs classes into JSON Schemas (2020-12, as OpenAPI 3.1 uses) in `components`.
    Names are camelCased as the HTTP converter writes them, or kept as they are for a body
    of G2A's contract (`g2a`), which may also carry fields we do not know."""

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Any]] = {}

    def ref(self, cls: type[Any], *, request: bool, g2a: bool = False) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.components:
            self.components[name] = {}  # placeholder first: classes may nest
            self.components[name] = self._object(cls, request=request, g2a=g2a)
        return {"$ref": f"#/components/schemas/{name}"}

    def _object(self, cls: type[Any], *, request: bool, g2a: bool) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            name = field.name if g2a else s.to_camel(field.name)
            schema = self.of_type(hints[field.name], request=request, g2a=g2a)
            properties[name] = schema | field.metadata.get("schema", {})
            # The converter writes every field of a response (None as null); a request may
            # leave out the fields that have a default.
            if not request or field.default is attrs.NOTHING:
                required.append(name)
        body: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
        if not g2a:
            body["additionalProperties"] = False
        if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
            body["description"] = cls.__doc__.strip()
        return body

    def of_type(self, tp: Any, *, request: bool, g2a: bool = False) -> dict[str, Any]:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (Union, types.UnionType):
            options = [a for a in args if a is not type(None)]
            if len(options) != len(args) and len(options) == 1:
                inner = self.of_type(options[0], request=request, g2a=g2a)
                if "$ref" in inner:
                    return {"anyOf": [inner, {"type": "null"}]}
                if "enum" in inner:
                    inner["enum"] = [*inner["enum"], None]
                return {**inner, "type": [inner.pop("type"), "null"]}
            return {"anyOf": [self.of_type(a, request=request, g2a=g2a) for a in args]}
        if origin is list:
            return {"type": "array", "items": self.of_type(args[0], request=request, g2a=g2a)}
        if origin is dict:
            values = self.of_type(args[1], request=request, g2a=g2a)
            return {"type": "object", "additionalProperties": values}
        if attrs.has(tp):
            return self.ref(tp, request=request, g2a=g2a)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"type": "string", "enum": [str(member.value) for member in tp]}
        simple = _SIMPLE.get(tp)
        if simple is None:
            raise TypeError(f"no JSON Schema for {tp!r}: add it to openapi._SIMPLE")
        return dict(simple)


_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    float: {"type": "number"},
    UUID: {"type": "string", "format": "uuid"},
    datetime: {"type": "string", "format": "date-time"},
    type(None): {"type": "null"},
    Any: {},
}

_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 128}
_ID_HEADERS = {  # name: (the response header, the request parameter)
    "X-Request-ID": ("This request's id.", "Your id for this request, echoed back and logged."),
    "X-Correlation-ID": (
        "The id shared by every request of one flow.",
        "Your id for the whole flow, echoed back and logged.",
    ),
}
EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `code` is stable, switch on it.",
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "code": {"type": "string"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "code": {"type": "string"}},
                    "required": ["field", "code"],
                },
            },
        },
        "required": ["type", "title", "status", "code"],
        "additionalProperties": True,
    },
    "Liveness": {
        "type": "object",
        "properties": {"status": {"const": "ok"}},
        "required": ["status"],
    },
    "ComponentHealth": {
        "type": "object",
        "properties": {
            "status": {"enum": ["up", "down", "degraded", "disabled"]},
            "latencyMs": {"type": ["number", "null"]},
            "code": {"type": "string", "description": "Why the component is not up."},
        },
        "required": ["status", "latencyMs"],
        "additionalProperties": False,
    },
    "Readiness": {
        "type": "object",
        "properties": {
            "status": {"enum": ["ready", "degraded", "unavailable"]},
            "g2aEnvironment": {"type": ["string", "null"]},
            "schemaVersion": {"type": ["integer", "null"]},
            "components": {
                "type": "object",
                "properties": {
                    name: {"$ref": "#/components/schemas/ComponentHealth"}
                    for name in ("database", "idempotencyStore", "redis", "g2a", "g2aCircuit")
                },
                "required": ["database", "idempotencyStore", "redis", "g2a", "g2aCircuit"],
                "additionalProperties": False,
            },
        },
        "required": ["status", "g2aEnvironment", "schemaVersion", "components"],
        "additionalProperties": False,
    },
    "Html": {"type": "string"},
    "OpenApiDocument": {
        "type": "object",
        "properties": {"openapi": {"type": "string"}},
        "required": ["openapi"],
    },
    "WebhookAck": {
        "type": "object",
        "properties": {
            "status": {"enum": ["accepted", "duplicate"]},
            "outcome": {"type": "string"},
        },
        "required": ["status"],
    },
}


# ---- the document -----------------------------------------------------------------------


def operations(router: web.UrlDispatcher) -> dict[tuple[str, str], Operation]:
    """(METHOD, path template) -> the operation its handler declares, HEAD excluded."""
    found = {}
    for route in router.routes():
        op = getattr(route.handler, METADATA, None)
        if route.method != "HEAD" and route.resource is not None and op is not None:
            found[(route.method, route.resource.canonical)] = op
    return found


def build_document(operations: Mapping[tuple[str, str], Operation]) -> dict[str, Any]:
    builder = SchemaBuilder()
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in operations.items():
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, builder)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "autokey",
            "version": "0.1.0",
            "description": (
                "Digital game keys: encrypted key pools, offers, atomic order fulfillment.\n\n"
                "Every response carries `X-Request-ID` and `X-Correlation-ID` (the caller's "
                "values when valid: 1-128 printable ASCII characters). Errors are RFC 9457 "
                "`application/problem+json` bodies with a stable `code`."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in operations.values())],
        "paths": paths,
        "components": {
            "schemas": {**builder.components, **EXTRA_SCHEMAS},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token from `autokey token create --role ...`.",
                }
            },
            "headers": {
                name: {"description": header, "schema": _ID_SCHEMA}
                for name, (header, _) in _ID_HEADERS.items()
            },
            "parameters": {
                name: {"name": name, "in": "header", "description": param, "schema": _ID_SCHEMA}
                for name, (_, param) in _ID_HEADERS.items()
            },
        },
    }


def _operation(method: str, path: str, op: Operation, builder: SchemaBuilder) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(path, op),
        "responses": _responses(op, builder),
        "security": [{"bearer": []}] if op.authenticated else [],
    }
    if op.description:
        body["description"] = op.description
    if op.request is not None:
        schema = builder.ref(op.request, request=True, g2a=op.g2a_body)
        content = {"application/json": {"schema": schema}}
        if op.text_upload:
            content["text/plain"] = {"schema": {"type": "string", "description": op.text_upload}}
        body["requestBody"] = {"required": op.request_required, "content": content}
    return body


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}") for w in path.strip("/").replace("-", "_").split("/") if w]
    return method.lower() + "".join(s.to_camel(w).capitalize() for w in words)


def _parameters(path: str, op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"$ref": f"#/components/parameters/{name}"} for name in _ID_HEADERS
    ]
    for segment in path.split("/"):
        if segment.startswith("{"):
            name, uuid = segment.strip("{}"), {"type": "string", "format": "uuid"}
            params.append({"name": name, "in": "path", "required": True, "schema": uuid})
    params.extend((*op.query, *PAGED) if op.paged else op.query)
    if op.idempotency_key:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Repeat a write safely: the first response is replayed.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    params.extend({"name": h, "in": "header", "required": False, "schema": {}} for h in op.headers)
    return params


_ID_HEADERS_REF = {name: {"$ref": f"#/components/headers/{name}"} for name in _ID_HEADERS}
_OK = {200: "OK", 201: "Created", 204: "No content", 503: "Not ready"}


def _responses(op: Operation, builder: SchemaBuilder) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    body = op.response
    if op.paged and isinstance(body, type):
        body = PageOf(body)
    schema = _response_schema(body, builder)
    for status in (op.status, *op.also):
        response: dict[str, Any] = {
            "description": _OK[status],
            "headers": _ID_HEADERS_REF,
        }
        if schema is not None:
            response["content"] = {op.media: {"schema": schema}}
        if op.csv is not None:
            response["content"]["text/csv"] = {"schema": {"type": "string", "description": op.csv}}
        if op.idempotency_key:
            response["headers"] = {
                **_ID_HEADERS_REF,
                "Idempotent-Replayed": {
                    "description": "`true` when this is the replay of an earlier response.",
                    "schema": {"enum": ["true", "false"]},
                },
            }
        responses[str(status)] = response
    paging = (e.InvalidInput,) if op.paged else ()
    raised = (*paging, *op.raises, *(AUTHENTICATED if op.authenticated else ()))
    for status, codes in sorted(_by_status(problem_kind(r) for r in raised).items()):
        description = "Problem: " + ", ".join(f"`{c}`" for c in codes)
        responses[str(status)] = _problem_response(codes, description)
    responses["default"] = _problem_response(None, "Any other problem (e.g. `internal_error`).")
    return responses


def _by_status(kinds: Iterable[ProblemKind]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for status, code in dict.fromkeys((kind.status, kind.code) for kind in kinds):
        grouped.setdefault(status, []).append(code)
    return grouped


def _problem_response(codes: list[str] | None, description: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"$ref": "#/components/schemas/Problem"}
    if codes is not None:
        schema = {"allOf": [schema, {"properties": {"code": {"enum": codes}}}]}
    return {
        "description": description,
        "headers": _ID_HEADERS_REF,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
    }


def _response_schema(
    response: type[Any] | PageOf | str | None, builder: SchemaBuilder
) -> dict[str, Any] | None:
    if response is None:
        return None
    if isinstance(response, str):
        return {"$ref": f"#/components/schemas/{response}"}
    if isinstance(response, PageOf):
        name = f"PageOf{response.item.__name__}"
        builder.components[name] = {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": builder.ref(response.item, request=False)},
                "nextCursor": {"type": ["string", "null"]},
            },
            "required": ["items", "nextCursor"],
            "additionalProperties": False,
        }
        return {"$ref": f"#/components/schemas/{name}"}
    return builder.ref(response, request=False)


@functools.lru_cache(maxsize=4)
def _document_for(operations: tuple[tuple[tuple[str, str], Operation], ...]) -> bytes:
    return json.dumps(build_document(dict(operations))).encode()


@routes.get(OPENAPI_PATH)
@Operation(
    summary="This OpenAPI document",
    tag="operations",
    response="OpenApiDocument",
    authenticated=False,
)
async def openapi_json(request: web.Request) -> web.Response:
    """The document for the routes this app has (built once per set of routes)."""
    body = _document_for(tuple(operations(request.app.router).items()))
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": "no-cache"}
    )
