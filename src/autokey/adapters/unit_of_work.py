"""The repositories of one transaction, bundled: every store adapter hands out one of these."""

from __future__ import annotations

import attrs

from autokey.ports.store import (
    AuditLog,
    DeliveryRepository,
    EndpointRepository,
    IdempotencyRepository,
    KeyRepository,
    KeyringRepository,
    MerchantRepository,
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
    endpoints: EndpointRepository
    deliveries: DeliveryRepository
    keyring: KeyringRepository
    merchant: MerchantRepository
