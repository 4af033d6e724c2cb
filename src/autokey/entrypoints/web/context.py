"""Per-request helpers shared by handlers: the container, the principal, JSON in and out,
path ids and pagination parameters."""

from __future__ import annotations

import base64
import binascii
import enum
import json
from typing import Any, TypeVar
from uuid import UUID

import cattrs
from aiohttp import web

from autokey.domain.model.auth import Principal
from autokey.domain.model.errors import FieldProblem, InvalidInput, NotFound, Unauthenticated
from autokey.domain.model.pages import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, PageRequest
from autokey.entrypoints.container import Container

T = TypeVar("T")

CONTAINER = web.AppKey("container", Container)
CONVERTER = web.AppKey("converter", cattrs.Converter)
PRINCIPAL_KEY = web.RequestKey("principal", Principal)


def container(request: web.Request) -> Container:
    return request.app[CONTAINER]


async def principal(request: web.Request) -> Principal:
    """The authenticated caller; Unauthenticated without a valid bearer token."""
    if isinstance(cached := request.get(PRINCIPAL_KEY), Principal):
        return cached
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(reason="missing_bearer_token")
    found: Principal = await container(request).auth().authenticate(secret.strip())
    request[PRINCIPAL_KEY] = found
    return found


def converter(request: web.Request) -> cattrs.Converter:
    return request.app[CONVERTER]


async def read_json(request: web.Request, cls: type[T], *, optional: bool = False) -> T:
    """Parse and validate a JSON body into `cls`; InvalidInput naming the fields otherwise."""
    raw = await request.read()
    if not raw.strip() and optional:
        return cls()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput.of("body", "malformed_json") from None
    try:
        return converter(request).structure(data, cls)
    except cattrs.BaseValidationError as exc:  # a class, or an array of them
        raise InvalidInput(problems=tuple(_field_problems(exc))) from None
    except (TypeError, ValueError, AttributeError):
        raise InvalidInput.of("body", "invalid_shape") from None


def _field_problems(exc: cattrs.BaseValidationError) -> list[FieldProblem]:
    notes = cattrs.transform_error(exc, path="body")
    problems = []
    for note in notes:
        message, _, path = note.rpartition(" @ ")
        code = "invalid_value"
        if "required field missing" in message:
            code = "required"
        elif "extra fields" in message:
            code = "unknown_field"
        elif "invalid value for type" in message:
            code = "invalid_type"
        problems.append(FieldProblem(field=path, code=code))
    return problems


def json_response(request: web.Request, body: Any, status: int = 200) -> web.Response:
    data = converter(request).unstructure(body)
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, default=str))


def path_id(request: web.Request, name: str, resource: str) -> UUID:
    """A UUID path parameter; a malformed one cannot exist, so it is NotFound."""
    raw = request.match_info[name]
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(resource=resource, id=raw[:64]) from None


def page_request(request: web.Request) -> PageRequest:
    query = request.query
    problems = []
    limit = DEFAULT_PAGE_SIZE
    if "limit" in query:
        try:
            limit = int(query["limit"])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_PAGE_SIZE:
            problems.append(FieldProblem(field="limit", code="out_of_range"))
    after = None
    if query.get("cursor"):
        try:
            after = UUID(bytes=base64.urlsafe_b64decode(query["cursor"] + "=="))
        except (ValueError, binascii.Error):
            problems.append(FieldProblem(field="cursor", code="invalid_cursor"))
    if problems:
        raise InvalidInput(problems=tuple(problems))
    return PageRequest(limit=limit, after=after)


E = TypeVar("E", bound=enum.Enum)


def status_filter(request: web.Request, kind: type[E]) -> E | None:
    """The optional `?status=` filter, case-insensitive; InvalidInput for an unknown value."""
    raw = request.query.get("status")
    if not raw:
        return None
    try:
        return kind(raw.upper())
    except ValueError:
        raise InvalidInput.of("status", "unknown_status") from None


def encode_cursor(after: UUID | None) -> str | None:
    return None if after is None else base64.urlsafe_b64encode(after.bytes).decode().rstrip("=")


def page_body(request: web.Request, page: Page[Any], items: list[Any]) -> dict[str, Any]:
    conv = converter(request)
    return {"items": conv.unstructure(items), "nextCursor": encode_cursor(page.next_after)}
