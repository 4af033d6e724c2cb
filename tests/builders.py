"""Small factories for domain objects in tests."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from autokey.adapters.crypto import AesGcmKeyCipher, HmacBlindIndex
from autokey.adapters.payments import SimulatedPaymentGateway
from autokey.adapters.system import Uuid7Ids
from autokey.domain.model.auth import ApiToken, Role
from autokey.domain.model.ids import (
    DeliveryId,
    EndpointId,
    KeyId,
    OfferId,
    OrderId,
    PoolId,
    SubjectId,
    TokenId,
)
from autokey.domain.model.keys import Key, KeyPool, KeyStatus
from autokey.domain.model.offers import DeliveryType, Money, Offer, OfferStatus
from autokey.domain.model.orders import Order, OrderStatus, UpstreamState
from autokey.domain.model.outbound import (
    Delivery,
    DeliveryStatus,
    EndpointStatus,
    OutboundEventType,
    WebhookEndpoint,
)
from autokey.domain.services.orders import OrderService
from autokey.ports.store import Store
from tests import logs
from tests.conftest import MASTER_KEY, FakeClock

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_ids = Uuid7Ids()
_cipher = AesGcmKeyCipher([bytes(range(32))])
_index = HmacBlindIndex(bytes(range(32)))


def new_uuid() -> uuid.UUID:
    return _ids.new_id()


def seller() -> SubjectId:
    return SubjectId(uuid.uuid4())


def pool(seller_id: SubjectId | None = None, name: str = "pool") -> KeyPool:
    return KeyPool(id=PoolId(new_uuid()), seller_id=seller_id or seller(), name=name, created_at=T0)


def key(pool_id: PoolId, plaintext: str | None = None) -> Key:
    key_id = KeyId(new_uuid())
    text = plaintext or f"KEY-{key_id.hex}"
    logs.register(text)
    return Key(
        id=key_id,
        pool_id=pool_id,
        status=KeyStatus.AVAILABLE,
        sealed=_cipher.seal(text, context=pool_id.bytes + key_id.bytes),
        fingerprint=_index.fingerprint(text),
        created_at=T0,
    )


def offer(
    seller_id: SubjectId, pool_id: PoolId | None, status: OfferStatus = OfferStatus.ACTIVE
) -> Offer:
    return Offer(
        id=OfferId(new_uuid()),
        seller_id=seller_id,
        title="A game",
        price=Money(amount=Decimal("9.99"), currency="EUR"),
        delivery_type=DeliveryType.AUTO_KEY if pool_id else DeliveryType.MANUAL,
        key_pool_id=pool_id,
        status=status,
        created_at=T0,
        updated_at=T0,
    )


def order(o: Offer, buyer: SubjectId, quantity: int = 1, ttl_s: int = 900) -> Order:
    assert o.key_pool_id is not None
    return Order(
        id=OrderId(new_uuid()),
        buyer_id=buyer,
        seller_id=o.seller_id,
        offer_id=o.id,
        pool_id=o.key_pool_id,
        delivery_type=o.delivery_type,
        quantity=quantity,
        unit_price=o.price,
        status=OrderStatus.PENDING,
        created_at=T0,
        updated_at=T0,
        reserved_until=T0 + timedelta(seconds=ttl_s),
    )


def token(role: Role = Role.SELLER, subject: SubjectId | None = None) -> ApiToken:
    return ApiToken(
        id=TokenId(new_uuid()),
        subject=subject or seller(),
        role=role,
        name="test",
        secret_hash=uuid.uuid4().bytes * 2,
        created_at=T0,
    )


def order_service(store: Store) -> OrderService:
    """Orders on `store`: the tests' master key, a clock held at T0, every charge accepted."""
    return OrderService(
        store,
        AesGcmKeyCipher([MASTER_KEY]),
        SimulatedPaymentGateway(),
        FakeClock(T0),
        Uuid7Ids(),
        reservation_ttl_s=900,
    )


async def stored_offer(store: Store, keys: int = 0) -> tuple[KeyPool, Offer]:
    """A seller's pool with `keys` AVAILABLE keys and an active offer on it, all stored."""
    owner = seller()
    p = pool(owner)
    o = offer(owner, p.id)
    async with store.transaction() as tx:
        await tx.pools.add(p)
        await tx.keys.add_new([key(p.id) for _ in range(keys)])
        await tx.offers.add(o)
    return p, o


async def stored_keys(store: Store, count: int) -> tuple[KeyPool, list[Key]]:
    """A pool and `count` AVAILABLE keys in it (oldest first), all stored."""
    p = pool()
    keys = [key(p.id) for _ in range(count)]
    async with store.transaction() as tx:
        await tx.pools.add(p)
        await tx.keys.add_new(keys)
    return p, keys


async def sourced_order(store: Store, upstream_id: str) -> Order:
    """A paid G2A-sourced order already linked to `upstream_id` (state CREATED), stored with
    its pool and offer."""
    owner = seller()
    p = pool(owner)
    o = offer(owner, p.id)
    placed = order(o, seller())
    placed.pay(T0)
    placed.start_sourcing(T0)
    placed.record_upstream(UpstreamState.CREATED, T0, upstream_id)
    async with store.transaction() as tx:
        await tx.pools.add(p)
        await tx.offers.add(o)
        await tx.orders.add(placed)
    return placed


class FixedRandom(random.Random):
    """A Random whose `random()` always returns one value, for jitter that a test can name."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self._value = value

    def random(self) -> float:
        return self._value


def endpoint(seller_id: SubjectId | None = None) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=EndpointId(new_uuid()),
        seller_id=seller_id or seller(),
        url="https://hooks.example.com/autokey",
        event_types=frozenset({OutboundEventType.ORDER_FULFILLED}),
        sealed_secret=b"\x01sealed",
        status=EndpointStatus.ACTIVE,
        created_at=T0,
    )


def delivery(e: WebhookEndpoint, due_in_s: int = 0) -> Delivery:
    return Delivery(
        id=DeliveryId(new_uuid()),
        endpoint_id=e.id,
        seller_id=e.seller_id,
        event_type=OutboundEventType.ORDER_FULFILLED,
        body='{"type":"order.fulfilled"}',
        status=DeliveryStatus.PENDING,
        created_at=T0,
        next_attempt_at=T0 + timedelta(seconds=due_in_s),
    )
