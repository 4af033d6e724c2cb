"""Principals, roles and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol, TypeVar

import attrs

from autokey.domain.model.errors import Forbidden, NotFound
from autokey.domain.model.ids import SubjectId, TokenId

MAX_TOKEN_NAME = 120


class Role(enum.StrEnum):
    SELLER = "seller"
    BUYER = "buyer"
    ADMIN = "admin"


class Owned(Protocol):
    """A resource that belongs to one subject (a seller's pool, a buyer's order)."""

    @property
    def owner_id(self) -> SubjectId: ...


Resource = TypeVar("Resource", bound=Owned)


@attrs.frozen(kw_only=True)
class Principal:
    """Who is making a request: the subject an API token speaks for, in one role."""

    subject: SubjectId
    role: Role
    token_id: TokenId | None = None

    def require(self, *roles: Role, action: str) -> None:
        """Raise Forbidden unless the principal has one of `roles` (admins always pass)."""
        if self.role is not Role.ADMIN and self.role not in roles:
            raise Forbidden(action=action)

    def owns(self, owner: SubjectId) -> bool:
        """True when the principal may see a resource owned by `owner`."""
        return self.role is Role.ADMIN or self.subject == owner

    def must_own(self, found: Resource | None, resource: str, id: object) -> Resource:
        """`found` if the principal may manage it; NotFound when it is absent or belongs to
        someone else (whether it exists is not revealed)."""
        if found is None or not self.owns(found.owner_id):
            raise NotFound(resource=resource, id=str(id))
        return found


@attrs.frozen(kw_only=True)
class ApiToken:
    """A stored API token. Only a hash of the secret is ever kept."""

    id: TokenId
    subject: SubjectId
    role: Role
    name: str
    secret_hash: bytes = attrs.field(repr=False)
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    """When the token last authenticated a request, to within the housekeeping interval."""

    @property
    def principal(self) -> Principal:
        return Principal(subject=self.subject, role=self.role, token_id=self.id)
