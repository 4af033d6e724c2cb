"""Principals, roles and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from autokey.domain.model.errors import Forbidden
from autokey.domain.model.ids import SubjectId, TokenId

MAX_TOKEN_NAME = 120


class Role(enum.StrEnum):
    SELLER = "seller"
    BUYER = "buyer"
    ADMIN = "admin"


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
