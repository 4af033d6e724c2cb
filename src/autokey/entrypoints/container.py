"""THE dependency-injector container: the only module that knows concrete classes.

Async resources (the store, later Redis and the HTTP session) are opened by the caller
(aiohttp's cleanup_ctx or the CLI) and handed in; the container itself stays synchronous.
"""

from __future__ import annotations

from dependency_injector import containers, providers

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndex, Sha256SecretHasher
from autokey.adapters.payments import SimulatedPaymentGateway, UnconfiguredPaymentGateway
from autokey.adapters.system import SystemClock, Uuid7Ids
from autokey.domain.services.auth import AuthService
from autokey.domain.services.idempotency import IdempotencyService
from autokey.domain.services.inventory import InventoryService
from autokey.domain.services.offers import OfferService
from autokey.domain.services.orders import OrderService
from autokey.entrypoints.settings import Settings
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
