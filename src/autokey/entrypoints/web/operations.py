"""An operation's OpenAPI metadata, declared at its handler: `@Operation(summary=...)` under
the route decorator. `openapi.py` collects it from the app's router; the body schemas come
from the wire classes named here, and each problem's status and code from `problems.py`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from aiohttp import web

from autokey.domain.model import errors as e
from autokey.domain.model.pages import MAX_PAGE_SIZE
from autokey.entrypoints.web.problems import UNREADABLE_BODY, ProblemKind

METADATA = "__openapi_operation__"
H = TypeVar("H", bound=Callable[..., Any])
Raised = type[Exception] | Exception | ProblemKind
"""An error class (an instance where the class alone does not decide the code), or the
kind of a problem that no error class stands for."""


@attrs.frozen
class PageOf:
    """A keyset page `{"items": [...], "nextCursor": str | null}` of `item`."""

    item: type[Any]


@attrs.frozen(kw_only=True, eq=False)
class Operation:
    summary: str
    tag: str
    status: int = 200
    also: tuple[int, ...] = ()
    """Other success statuses with the same body (an offer draft saved again answers 200)."""
    response: type[Any] | PageOf | str | None = None
    """A wire class, a page of them, a name in `openapi.EXTRA_SCHEMAS`, or None (no body)."""
    paged: bool = False
    """The response is a keyset page of `response`, read with `limit` and `cursor`."""
    media: str = "application/json"
    request: type[Any] | None = None
    request_required: bool = True
    g2a_body: bool = False
    """The request follows G2A's contract: snake_case names, unknown fields ignored."""
    text_upload: str | None = None
    """The description of the `text/plain` body also accepted."""
    query: tuple[dict[str, Any], ...] = ()
    """Query parameters, each made by `param`."""
    headers: tuple[str, ...] = ()
    raises: tuple[Raised, ...] = ()
    authenticated: bool = True
    idempotency_key: bool = False
    csv: str | None = None
    """With `Accept: text/csv` the operation streams this CSV instead (the description)."""
    description: str | None = None

    def __call__(self, handler: H) -> H:
        setattr(handler, METADATA, self)
        return handler


# A body's values reach the database, which may still refuse one (`unstorable_value`).
JSON_BODY: tuple[Raised, ...] = (
    e.InvalidInput,
    UNREADABLE_BODY,
    e.UnstorableValue,
    web.HTTPRequestEntityTooLarge,
)
CHANGE = (e.NotFound, e.IllegalTransition, e.Conflict)
IDEMPOTENT = (e.IdempotencyInFlight, e.IdempotencyKeyReused)


def param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    """An optional query parameter (a string unless `schema` says otherwise)."""
    where = {"name": name, "in": "query", "required": False, "description": description}
    return where | {"schema": {"type": "string", **schema}}


def status_param(kind: type[Any], what: str) -> dict[str, Any]:
    values = [str(member.value) for member in kind]
    return param("status", f"Only {what} of this status (case-insensitive).", enum=values)


PAGED = (
    param("limit", "Page size.", type="integer", minimum=1, maximum=MAX_PAGE_SIZE, default=100),
    param("cursor", "`nextCursor` of the previous page."),
)
