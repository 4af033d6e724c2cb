"""The repositories of one transaction, bundled: every store adapter hands out one of these,
and the rules every SQL store applies the same way."""

from __future__ import annotations

from uuid import UUID

import attrs

from autokey.domain.model.errors import NotFound
from autokey.ports.store import (
    AuditLog,
    IdempotencyRepository,
    KeyRepository,
    OfferRepository,
    OrderRepository,
    PoolRepository,
    TokenRepository,
    UnitOfWork,
    WebhookRepository,
)


@attrs.define(kw_only=True)
class Repositories(UnitOfWork):
    tokens: TokenRepository
    pools: PoolRepository
    keys: KeyRepository
    offers: OfferRepository
    orders: OrderRepository
    idempotency: IdempotencyRepository
    audit: AuditLog
    webhooks: WebhookRepository


def require_saved(changed: int, resource: str, entity_id: UUID) -> None:
    """A `save` updates a stored row: no row changed means the entity is not stored."""
    if changed == 0:
        raise NotFound(resource=resource, id=str(entity_id))
