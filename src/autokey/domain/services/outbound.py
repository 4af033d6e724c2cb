"""Outbound webhooks to sellers: registering endpoints, writing deliveries in the
transaction of the change they announce, and dispatching them at least once."""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta

import structlog

from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import InvalidInput, NotFound
from autokey.domain.model.ids import DeliveryId, EndpointId, SubjectId
from autokey.domain.model.outbound import (
    MAX_ENDPOINTS_PER_SELLER,
    Delivery,
    DeliveryStatus,
    EndpointStatus,
    OutboundEventType,
    SendOutcome,
    WebhookEndpoint,
    check_target,
    payload,
    secret_context,
)
from autokey.domain.model.pages import Page, PageRequest
from autokey.ports.crypto import KeyCipher
from autokey.ports.outbound import WebhookSender
from autokey.ports.store import Store, UnitOfWork
from autokey.ports.system import Clock, IdGenerator

log = structlog.get_logger("autokey.outbound")
DISPATCH_BATCH = 20


Notice = tuple[SubjectId, OutboundEventType, Mapping[str, object]]
"""A change to announce: the seller it concerns, its event type and its data."""


async def announce(
    tx: UnitOfWork,
    ids: IdGenerator,
    clock: Clock,
    seller_id: SubjectId,
    event_type: OutboundEventType,
    data: Mapping[str, object],
) -> None:
    """Write one delivery per endpoint of the seller that wants `event_type`, in `tx`: the
    event exists exactly when the change it announces is committed."""
    await announce_all(tx, ids, clock, [(seller_id, event_type, data)])


async def announce_all(
    tx: UnitOfWork, ids: IdGenerator, clock: Clock, notices: Sequence[Notice]
) -> None:
    """`announce` for several changes of one transaction, the endpoints of all their sellers
    read at once."""
    if notices:
        sellers = {seller for seller, _, _ in notices}
        await announce_to(tx, ids, clock, notices, await tx.endpoints.list_for_sellers(sellers))


async def announce_to(
    tx: UnitOfWork,
    ids: IdGenerator,
    clock: Clock,
    notices: Sequence[Notice],
    read: Sequence[WebhookEndpoint],
) -> None:
    """`announce_all` with the endpoints of the notices' sellers `read` already in `tx`."""
    endpoints: dict[SubjectId, list[WebhookEndpoint]] = {}
    for endpoint in read:
        endpoints.setdefault(endpoint.seller_id, []).append(endpoint)
    now = clock.now()
    deliveries = []
    for seller_id, event_type, data in notices:
        wanting = [e for e in endpoints.get(seller_id, ()) if e.wants(event_type)]
        if not wanting:
            continue
        body = json.dumps(payload(event_type, now, data), separators=(",", ":"), default=str)
        deliveries += [
            Delivery(
                id=DeliveryId(ids.new_id()),
                endpoint_id=e.id,
                seller_id=seller_id,
                event_type=event_type,
                body=body,
                status=DeliveryStatus.PENDING,
                created_at=now,
                next_attempt_at=now,
            )
            for e in wanting
        ]
    if deliveries:
        await tx.deliveries.add(deliveries)


class SellerWebhookService:
    def __init__(
        self,
        store: Store,
        cipher: KeyCipher,
        sender: WebhookSender,
        clock: Clock,
        ids: IdGenerator,
        *,
        require_https: bool,
        allow_private: bool,
        lease: timedelta,
        rng: random.Random | None = None,
    ) -> None:
        """`lease`: how long a dispatcher owns a delivery it sends (longer than one send may
        take); after a crash, another dispatcher sends it again once the lease ends."""
        self._store, self._cipher, self._sender = store, cipher, sender
        self._clock, self._ids = clock, ids
        self._require_https, self._allow_private = require_https, allow_private
        self._lease = lease
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy

    async def register(
        self, principal: Principal, url: str, event_types: Collection[OutboundEventType]
    ) -> tuple[WebhookEndpoint, str]:
        """A new endpoint and its signing secret, which is returned only this once."""
        principal.require(Role.SELLER, action="manage_webhooks")
        if not event_types:
            raise InvalidInput.of("event_types", "required")
        target = check_target(
            url, require_https=self._require_https, allow_private=self._allow_private
        )
        endpoint_id, secret = EndpointId(self._ids.new_id()), self._sender.new_secret()
        endpoint = WebhookEndpoint(
            id=endpoint_id,
            seller_id=principal.subject,
            url=target,
            event_types=frozenset(event_types),
            sealed_secret=self._cipher.seal(secret, context=secret_context(endpoint_id)),
            status=EndpointStatus.ACTIVE,
            created_at=self._clock.now(),
        )
        async with self._store.transaction() as tx:
            if (
                len(await tx.endpoints.list_for_sellers([principal.subject]))
                >= MAX_ENDPOINTS_PER_SELLER
            ):
                raise InvalidInput.of("url", "too_many_endpoints")
            await tx.endpoints.add(endpoint)
        log.info("webhooks.endpoint_registered", endpoint_id=str(endpoint_id))
        return endpoint, secret

    async def endpoints(self, principal: Principal) -> Sequence[WebhookEndpoint]:
        principal.require(Role.SELLER, action="manage_webhooks")
        async with self._store.transaction() as tx:
            return await tx.endpoints.list_for_sellers([principal.subject])

    async def deliveries(
        self, principal: Principal, endpoint_id: EndpointId, page: PageRequest
    ) -> Page[Delivery]:
        async with self._store.transaction() as tx:
            await self._own(tx, principal, endpoint_id)
            return await tx.deliveries.list_for_endpoint(endpoint_id, page)

    async def replay(
        self, principal: Principal, endpoint_id: EndpointId, delivery_id: DeliveryId
    ) -> Delivery:
        """Send a delivery again, whatever its state; on a disabled endpoint, re-enable it."""
        async with self._store.transaction() as tx:
            endpoint = await self._own(tx, principal, endpoint_id)
            delivery = await tx.deliveries.get(delivery_id)
            if delivery is None or delivery.endpoint_id != endpoint_id:
                raise NotFound(resource="delivery", id=str(delivery_id))
            delivery.replay(self._clock.now())
            await tx.deliveries.save(delivery)
            if endpoint.status is EndpointStatus.DISABLED:
                endpoint.enable()
                await tx.endpoints.save(endpoint)
            return delivery

    async def _own(
        self, tx: UnitOfWork, principal: Principal, endpoint_id: EndpointId
    ) -> WebhookEndpoint:
        principal.require(Role.SELLER, action="manage_webhooks")
        return principal.must_own(
            await tx.endpoints.get(endpoint_id), "webhook_endpoint", endpoint_id
        )

    async def dispatch_once(self) -> int:
        """Lease the deliveries that are due, send each once, record every outcome; returns
        how many were sent. Several dispatchers may run at once: a lease is never shared, and
        a dispatcher that dies mid-send leaves its lease to run out (at least once)."""
        now = self._clock.now()
        async with self._store.transaction() as tx:
            due = await tx.deliveries.lease_due(now, now + self._lease, DISPATCH_BATCH)
        for delivery in due:
            await self._attempt(delivery)
        return len(due)

    async def _attempt(self, delivery: Delivery) -> None:
        outcome = await self._post(delivery)
        async with self._store.transaction() as tx:
            endpoint = await tx.endpoints.get(delivery.endpoint_id)
            if delivery.record(outcome, endpoint, self._clock.now(), self._rng):
                log.warning("webhooks.endpoint_disabled", endpoint_id=str(delivery.endpoint_id))
            await tx.deliveries.save(delivery)
            if endpoint is not None:
                await tx.endpoints.save(endpoint)
        log.info(
            "webhooks.attempted",
            delivery_id=str(delivery.id),
            status=delivery.status.value,
            status_code=delivery.last_status_code,
            error=delivery.last_error,
        )

    async def _post(self, delivery: Delivery) -> SendOutcome:
        """One POST of `delivery` to its endpoint, unless the endpoint is gone or disabled."""
        async with self._store.transaction() as tx:
            endpoint = await tx.endpoints.get(delivery.endpoint_id)
        if endpoint is None or endpoint.status is not EndpointStatus.ACTIVE:
            return SendOutcome(error="endpoint_disabled")
        return await self._sender.send(
            endpoint.url,
            message_id=str(delivery.id),
            timestamp=self._clock.now(),
            body=delivery.body,
            secret=self._cipher.open(endpoint.sealed_secret, context=secret_context(endpoint.id)),
        )
