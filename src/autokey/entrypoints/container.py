"""THE dependency-injector container: the only module that knows concrete classes.

Async resources (the store, later Redis and the HTTP session) are opened by the caller
(aiohttp's cleanup_ctx or the CLI) and handed in; the container itself stays synchronous.
"""

from __future__ import annotations

import aiohttp
from dependency_injector import containers, providers
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndex, Sha256SecretHasher
from autokey.adapters.g2a.client import G2AMarketplaceClient
from autokey.adapters.g2a.config import G2AConfig
from autokey.adapters.g2a.guard import CallGuard, GuardPolicy
from autokey.adapters.g2a.metrics import G2AMetrics
from autokey.adapters.g2a.retry import RetryPolicy
from autokey.adapters.memory.token_cache import MemoryTokenCache
from autokey.adapters.payments import SimulatedPaymentGateway, UnconfiguredPaymentGateway
from autokey.adapters.redis.token_cache import RedisTokenCache
from autokey.adapters.system import SystemClock, Uuid7Ids
from autokey.domain.services.auth import AuthService
from autokey.domain.services.idempotency import IdempotencyService
from autokey.domain.services.inventory import InventoryService
from autokey.domain.services.merchant import MerchantService
from autokey.domain.services.offers import OfferService
from autokey.domain.services.orders import OrderService
from autokey.domain.services.sourcing import SourcingService
from autokey.domain.services.stock_sync import StockSync
from autokey.domain.services.webhooks import WebhookService
from autokey.entrypoints.settings import Settings
from autokey.entrypoints.web.health import Check, CircuitState, ReadinessChecker
from autokey.entrypoints.web.metrics import (
    AuditedPoolStock,
    DomainMetrics,
    HttpMetrics,
    KeyStockCollector,
)
from autokey.ports.marketplace import MarketplaceClient, TokenCache
from autokey.ports.payments import PaymentGateway
from autokey.ports.store import Store
from autokey.ports.system import Clock


def _token_cache(redis: Redis | None, metrics: G2AMetrics) -> TokenCache:
    """Redis when configured (shared by every process), degrading to the in-process cache."""
    local = MemoryTokenCache()
    if redis is None:
        return local
    return RedisTokenCache(redis=redis, fallback=local, on_fallback=metrics.token_cache_fallback)


def _marketplace(
    config: G2AConfig | None,
    session: aiohttp.ClientSession | None,
    cache: TokenCache,
    metrics: G2AMetrics,
    clock: Clock,
    guard: CallGuard,
) -> MarketplaceClient | None:
    if config is None or session is None:
        return None
    return G2AMarketplaceClient(
        session=session,
        config=config,
        token_cache=cache,
        retry_policy=RetryPolicy(max_retries=config.retry_max),
        metrics=metrics,
        clock=clock.now,
        guard=guard,
    )


def _stock_sync(
    store: Store, marketplace: MarketplaceClient | None, clock: Clock
) -> StockSync | None:
    return None if marketplace is None else StockSync(store, marketplace, clock)


class Container(containers.DeclarativeContainer):
    settings: providers.Dependency[Settings] = providers.Dependency(instance_of=Settings)
    store: providers.Dependency[Store] = providers.Dependency()
    master_keys: providers.Dependency[tuple[bytes, ...]] = providers.Dependency(instance_of=tuple)
    clock: providers.Dependency[Clock] = providers.Dependency(default=SystemClock())
    http_session: providers.Dependency[aiohttp.ClientSession | None] = providers.Dependency(
        default=None
    )
    """The one outbound ClientSession, opened by the app only when G2A is configured."""
    redis: providers.Dependency[Redis | None] = providers.Dependency(default=None)
    metrics_registry = providers.Singleton(CollectorRegistry)

    ids = providers.Singleton(Uuid7Ids)
    cipher = providers.Singleton(AesGcmKeyCipher, master_keys)
    # The blind index outlives sealing-key rotations: it is keyed by the OLDEST master key
    # (ADR 0004), so fingerprints of keys uploaded before a rotation still match.
    blind_index = providers.Singleton(HmacBlindIndex, master_keys.provided[-1])
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
    # G2A's reservations are orders with their own lifetime (AUTOKEY_G2A_RESERVATION_TTL_S).
    g2a_orders = providers.Singleton(
        OrderService,
        store,
        cipher,
        payments,
        clock,
        ids,
        reservation_ttl_s=settings.provided.g2a_reservation_ttl_s,
    )
    merchant = providers.Singleton(
        MerchantService,
        store,
        g2a_orders,
        hasher,
        clock,
        ids,
        reservation_ttl_s=settings.provided.g2a_reservation_ttl_s,
    )

    g2a_metrics = providers.Singleton(G2AMetrics, metrics_registry)
    token_cache = providers.Singleton(_token_cache, redis, g2a_metrics)
    # One guard for every G2A call, buying and selling: rate limit and circuit breaker.
    g2a_guard = providers.Singleton(
        CallGuard, providers.Factory(GuardPolicy, rate=settings.provided.g2a_rate_limit)
    )
    marketplace = providers.Singleton(
        _marketplace,
        settings.provided.g2a,
        http_session,
        token_cache,
        g2a_metrics,
        clock,
        g2a_guard,
    )
    stock_sync = providers.Singleton(_stock_sync, store, marketplace, clock)
    sourcing = providers.Singleton(
        SourcingService, store, marketplace, cipher, blind_index, clock, ids
    )
    webhooks = providers.Singleton(WebhookService, store, clock, settings.provided.webhook_secrets)

    # ---- observability: metrics and readiness ------------------------------------------
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
    g2a_circuit: providers.Provider[CircuitState | None] = providers.Object(None)
    readiness = providers.Singleton(
        ReadinessChecker,
        store,
        g2a_environment=g2a_environment,
        redis_ping=redis_ping,
        g2a_probe=g2a_probe,
        g2a_circuit=g2a_circuit,
    )
