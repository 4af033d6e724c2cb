"""THE dependency-injector container: the only module that knows concrete classes.

Async resources (the store, later Redis and the HTTP session) are opened by the caller
(aiohttp's cleanup_ctx or the CLI) and handed in; the container itself stays synchronous.
"""

from __future__ import annotations

from dependency_injector import containers, providers
from prometheus_client import CollectorRegistry

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndex, Sha256SecretHasher
from autokey.adapters.payments import SimulatedPaymentGateway, UnconfiguredPaymentGateway
from autokey.adapters.system import SystemClock, Uuid7Ids
from autokey.domain.services.auth import AuthService
from autokey.domain.services.idempotency import IdempotencyService
from autokey.domain.services.inventory import InventoryService
from autokey.domain.services.offers import OfferService
from autokey.domain.services.orders import OrderService
from autokey.entrypoints.settings import Settings
from autokey.entrypoints.web.health import Check, ReadinessChecker
from autokey.entrypoints.web.metrics import (
    AuditedPoolStock,
    DomainMetrics,
    HttpMetrics,
    KeyStockCollector,
)
from autokey.ports.payments import PaymentGateway
from autokey.ports.store import Store
from autokey.ports.system import Clock


class Container(containers.DeclarativeContainer):
    settings: providers.Dependency[Settings] = providers.Dependency(instance_of=Settings)
    store: providers.Dependency[Store] = providers.Dependency()
    master_keys: providers.Dependency[tuple[bytes, ...]] = providers.Dependency(instance_of=tuple)
    clock: providers.Dependency[Clock] = providers.Dependency(default=SystemClock())

    ids = providers.Singleton(Uuid7Ids)
    cipher = providers.Singleton(AesGcmKeyCipher, master_keys)
    blind_index = providers.Singleton(HmacBlindIndex, master_keys.provided[0])
    hasher = providers.Singleton(Sha256SecretHasher)

    payments: providers.Provider[PaymentGateway] = providers.Selector(
        settings.provided.payments.value,
        simulated=providers.Singleton(SimulatedPaymentGateway),
        none=providers.Singleton(UnconfiguredPaymentGateway),
    )

    auth = providers.Singleton(AuthService, store, hasher, clock, ids)
    inventory = providers.Singleton(InventoryService, store, cipher, blind_index, clock, ids)
    offers = providers.Singleton(OfferService, store, clock, ids)
    orders = providers.Singleton(
        OrderService,
        store,
        cipher,
        payments,
        clock,
        ids,
        reservation_ttl_s=settings.provided.reservation_ttl_s,
    )
    idempotency = providers.Singleton(IdempotencyService, store, clock)

    # ---- observability: metrics and readiness ------------------------------------------
    metrics_registry = providers.Singleton(CollectorRegistry)
    http_metrics = providers.Singleton(HttpMetrics, metrics_registry)
    domain_metrics = providers.Singleton(DomainMetrics, metrics_registry)
    key_stock = providers.Singleton(
        KeyStockCollector, providers.Singleton(AuditedPoolStock, store), registry=metrics_registry
    )
    # Readiness hooks, None until the G2A/Redis wiring overrides them: `redis_ping` is an
    # async callable raising when Redis does not answer, `g2a_probe` is
    # MarketplaceClient.probe_token, `g2a_environment` the G2A environment's name.
    redis_ping: providers.Provider[Check | None] = providers.Object(None)
    g2a_probe: providers.Provider[Check | None] = providers.Object(None)
    g2a_environment: providers.Provider[str | None] = providers.Object(None)
    readiness = providers.Singleton(
        ReadinessChecker,
        store,
        g2a_environment=g2a_environment,
        redis_ping=redis_ping,
        g2a_probe=g2a_probe,
    )
