"""Per-request helpers shared by handlers: the container, the principal, JSON in and out,
path ids and pagination parameters."""

from __future__ import annotations

import base64
import binascii
import enum
import json
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import cattrs
from aiohttp import web
from cattrs.v import format_exception

from autokey.adapters import json_text
from autokey.domain.model.auth import Principal
from autokey.domain.model.errors import FieldProblem, InvalidInput, NotFound, Unauthenticated
from autokey.domain.model.limits import Limit
from autokey.domain.model.pages import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, PageRequest
from autokey.entrypoints.container import Container
from autokey.entrypoints.web.bodies import body_bytes
from autokey.entrypoints.web.schemas import parse_uuid

T = TypeVar("T")

CONTAINER = web.AppKey("container", Container)
CONVERTER = web.AppKey("converter", cattrs.Converter)
PRINCIPAL_KEY = web.RequestKey("principal", Principal)


def container(request: web.Request) -> Container:
    return request.app[CONTAINER]


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ROUTE_LIMITS = {
    ("POST", "/key-pools/{pool_id}/keys/upload"): Limit.UPLOADS,
    ("POST", "/orders"): Limit.ORDERS,
}


async def principal(request: web.Request) -> Principal:
    """The authenticated caller; Unauthenticated without a valid bearer token.

    Rate limits are counted here, once per request: failed authentications per client
    address (an address over its allowance is refused before its token is even looked
    at), then the principal's writes, uploads and order creations (RateLimited)."""
    if isinstance(cached := request.get(PRINCIPAL_KEY), Principal):
        return cached
    limiter = container(request).rate_limiter()
    address = request.remote or "unknown"
    await limiter.check(Limit.AUTH_FAILURES, address)
    try:
        found = await _authenticate(request)
    except Unauthenticated:
        await limiter.spend(Limit.AUTH_FAILURES, address)
        raise
    who = f"{found.role}:{found.subject}"
    if request.method in _WRITES:
        await limiter.spend(Limit.WRITES, who)
    resource = request.match_info.route.resource
    limit = _ROUTE_LIMITS.get((request.method, resource.canonical if resource else ""))
    if limit is not None:
        await limiter.spend(limit, who)
    request[PRINCIPAL_KEY] = found
    return found


async def _authenticate(request: web.Request) -> Principal:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(reason="missing_bearer_token")
    found: Principal = await container(request).auth().authenticate(secret.strip())
    return found


def converter(request: web.Request) -> cattrs.Converter:
    return request.app[CONVERTER]


async def read_json(request: web.Request, cls: type[T], *, optional: bool = False) -> T:
    """Parse and validate a JSON body into `cls`; InvalidInput naming the fields otherwise."""
    raw = await body_bytes(request)
    if not raw.strip() and optional:
        return cls()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput.of("body", "malformed_json") from None
    except RecursionError:  # the parser's own depth bound: ~1,000 nested arrays or objects
        raise InvalidInput.of("body", "too_deeply_nested") from None
    try:
        return converter(request).structure(data, cls)
    except cattrs.BaseValidationError as exc:  # a class, or an array of them
        raise InvalidInput(problems=tuple(_field_problems(exc))) from None
    except (TypeError, ValueError, AttributeError):
        raise InvalidInput.of("body", "invalid_shape") from None


def _field_problems(exc: cattrs.BaseValidationError) -> list[FieldProblem]:
    notes = cattrs.transform_error(exc, path="body", format_exception=_format_exception)
    problems = []
    for note in notes:
        message, _, path = note.rpartition(" @ ")
        code = "invalid_value"
        if message == "unknown value":
            code = "unknown_value"
        elif "required field missing" in message:
            code = "required"
        elif "extra fields" in message:
            code = "unknown_field"
        elif "invalid value for type" in message:
            code = "invalid_type"
        problems.append(FieldProblem(field=path, code=code))
    return problems


def _format_exception(exc: BaseException, kind: type | None) -> str:
    """A string outside an enum's values is an unknown value, not a wrong type."""
    if isinstance(exc, ValueError) and isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "unknown value"
    return format_exception(exc, kind)


def json_response(request: web.Request, body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json_body(converter(request).unstructure(body)),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


def json_body(data: Any) -> bytes:
    """A response body. The converter leaves ids, instants and enum members to the encoder
    (`make_http_converter`); instants are written in ISO 8601 with `Z` for UTC, the rest of
    what has no JSON type as its str()."""
    return json_text.dumps(data, _wire_text, utc_z=True)


def _wire_text(value: Any) -> str:
    """Text for what JSON has no type for, where orjson refused the body (json.dumps then
    writes it): the same text orjson writes."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def path_id(request: web.Request, name: str, resource: str) -> UUID:
    """A UUID path parameter; a malformed one cannot exist, so it is NotFound."""
    raw = request.match_info[name]
    try:
        return parse_uuid(raw)
    except ValueError:
        raise NotFound(resource=resource, id=raw[:64]) from None


def page_request(request: web.Request) -> PageRequest:
    query = request.query
    problems = []
    limit = DEFAULT_PAGE_SIZE
    if "limit" in query:
        raw = query["limit"]  # int() would also take "1_0", " 10" and other scripts' digits
        limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 0
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


def uuid_param(request: web.Request, name: str) -> UUID | None:
    """An optional id in the query; InvalidInput when it is not one."""
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return parse_uuid(raw)
    except ValueError:
        raise InvalidInput.of(name, "not_an_id") from None


E = TypeVar("E", bound=enum.Enum)


def enum_param(request: web.Request, name: str, kind: type[E]) -> E | None:
    """An optional enum value in the query, exactly as spelled; InvalidInput otherwise."""
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise InvalidInput.of(name, "unknown_value") from None


def time_param(request: web.Request, name: str) -> datetime | None:
    """An optional ISO 8601 instant in the query (`2026-11-29T12:00:00Z`); naive ones are UTC."""
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput.of(name, "not_an_iso8601_time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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
