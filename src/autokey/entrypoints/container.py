"""THE dependency-injector container: the only module that knows concrete classes.

Async resources (the store, later Redis and the HTTP session) are opened by the caller
(aiohttp's cleanup_ctx or the CLI) and handed in; the container itself stays synchronous.
"""

from __future__ import annotations

import aiohttp
import attrs
from dependency_injector import containers, providers
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndexKeys, Sha256SecretHasher
from autokey.adapters.g2a.client import G2AMarketplaceClient
from autokey.adapters.g2a.config import G2AConfig
from autokey.adapters.g2a.guard import CallGuard, GuardPolicy
from autokey.adapters.g2a.metrics import G2AMetrics
from autokey.adapters.g2a.retry import RetryPolicy
from autokey.adapters.memory.token_cache import MemoryTokenCache
from autokey.adapters.payments import SimulatedPaymentGateway, UnconfiguredPaymentGateway
from autokey.adapters.rate_limits import LimitsRateLimiter
from autokey.adapters.redis.token_cache import RedisTokenCache
from autokey.adapters.system import SystemClock, Uuid7Ids
from autokey.adapters.webhook_sender import StandardWebhookSender
from autokey.domain.model.limits import Limit
from autokey.domain.services.auth import AuthService
from autokey.domain.services.idempotency import IdempotencyService
from autokey.domain.services.inventory import InventoryService
from autokey.domain.services.keyring import KeyringService
from autokey.domain.services.merchant import MerchantService
from autokey.domain.services.offers import OfferService
from autokey.domain.services.orders import OrderService
from autokey.domain.services.outbound import SellerWebhookService
from autokey.domain.services.sourcing import SourcingService
from autokey.domain.services.stock_sync import StockSync
from autokey.domain.services.webhooks import WebhookService
from autokey.entrypoints.metrics import (
    AuditedPoolStock,
    DomainMetrics,
    HttpMetrics,
    KeyStockCollector,
    exposition,
)
from autokey.entrypoints.readiness import Check, CircuitState, ReadinessChecker
from autokey.entrypoints.settings import RateLimits, Settings
from autokey.ports.crypto import BlindIndex
from autokey.ports.marketplace import MarketplaceClient, TokenCache
from autokey.ports.payments import PaymentGateway
from autokey.ports.rate_limits import RateLimiter
from autokey.ports.store import RevocationWatch, Store
from autokey.ports.system import Clock


def _token_cache(redis: Redis | None, metrics: G2AMetrics) -> TokenCache:
    """Redis when configured (shared by every process), degrading to the in-process cache."""
    local = MemoryTokenCache()
    if redis is None:
        return local
    return RedisTokenCache(redis=redis, fallback=local, on_fallback=metrics.token_cache_fallback)


def _rate_limiter(allowances: RateLimits, redis: Redis | None) -> RateLimiter:
    """Shared through Redis when configured, per process otherwise."""
    configured = attrs.asdict(allowances).items()
    return LimitsRateLimiter({Limit(k): v for k, v in configured if v}, redis=redis)


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
    redis: providers.Dependency[Redis | None] = providers.Dependency(
        default=providers.Object(None)  # a bare None would count as "no default"
    )
    webhook_session: providers.Provider[aiohttp.ClientSession | None] = providers.Object(None)
    """The session seller webhooks go out on, opened by the app (`open_webhook_session`)."""
    revocations: providers.Provider[RevocationWatch | None] = providers.Object(None)
    """Announced token revocations (PostgreSQL only); without it principals are not cached."""
    metrics_registry = providers.Singleton(CollectorRegistry)

    ids = providers.Singleton(Uuid7Ids)
    cipher = providers.Singleton(AesGcmKeyCipher, master_keys)
    index_keys = providers.Singleton(HmacBlindIndexKeys, master_keys)
    keyring = providers.Singleton(KeyringService, store, cipher, index_keys, clock, ids)
    # Keyed by the store's pinned index key, which only the startup check can recover
    # (bootstrap.unlock, ADR 0011): nothing that fingerprints keys works before it has run.
    blind_index: providers.Dependency[BlindIndex] = providers.Dependency()
    hasher = providers.Singleton(Sha256SecretHasher)

    payments: providers.Provider[PaymentGateway] = providers.Selector(
        settings.provided.payments.value,
        simulated=providers.Singleton(SimulatedPaymentGateway),
        none=providers.Singleton(UnconfiguredPaymentGateway),
    )

    auth = providers.Singleton(AuthService, store, hasher, clock, ids, revocations)
    rate_limiter = providers.Singleton(_rate_limiter, settings.provided.rate_limits, redis)
    inventory = providers.Singleton(InventoryService, store, cipher, blind_index, clock, ids)
    offers = providers.Singleton(OfferService, store, clock, ids)
    domain_metrics = providers.Singleton(DomainMetrics, metrics_registry)
    orders = providers.Singleton(
        OrderService,
        store,
        cipher,
        payments,
        clock,
        ids,
        reservation_ttl_s=settings.provided.reservation_ttl_s,
        group_commit=settings.provided.group_commit,
        lanes=settings.provided.batch_lanes,
        on_batch=domain_metrics.provided.group_commit_batch,
    )
    idempotency = providers.Singleton(
        IdempotencyService, store, clock, settings.provided.idempotency_lease_s
    )
    webhook_sender = providers.Singleton(
        StandardWebhookSender,
        webhook_session,
        allow_private=settings.provided.webhook_allow_private,
    )
    seller_webhooks = providers.Singleton(
        SellerWebhookService,
        store,
        cipher,
        webhook_sender,
        clock,
        ids,
        require_https=settings.provided.production,
        allow_private=settings.provided.webhook_allow_private,
        lease=settings.provided.webhook_lease,
    )
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
        group_commit=settings.provided.group_commit,
        lanes=settings.provided.batch_lanes,
        on_batch=domain_metrics.provided.group_commit_batch,
        revocations=revocations,
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
    pool_stock = providers.Singleton(AuditedPoolStock, store)
    key_stock = providers.Singleton(
        KeyStockCollector,
        pool_stock,
        names=pool_stock.provided.names,
        registry=metrics_registry,
    )
    metrics_exposition = providers.Singleton(exposition, metrics_registry, key_stock)
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
