"""Receiving signed marketplace webhooks: verify, then apply each event exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from autokey.domain.model.errors import DuplicateEvent, WebhookRejected, WebhooksNotConfigured
from autokey.domain.model.ids import OrderId
from autokey.domain.model.orders import UpstreamState
from autokey.domain.model.text import text_problem
from autokey.domain.model.webhooks import (
    MAX_EVENT_ID,
    NONCE_RETENTION_S,
    Rejection,
    WebhookEvent,
    WebhookEventType,
    WebhookOutcome,
    WebhookRequest,
    verify_webhook,
)
from autokey.ports.store import Store, UnitOfWork
from autokey.ports.system import Clock

EVENT_STATES = {
    WebhookEventType.ORDER_PAID: UpstreamState.PAID,
    WebhookEventType.ORDER_COMPLETE: UpstreamState.COMPLETE,
    WebhookEventType.ORDER_FAILED: UpstreamState.FAILED,
    WebhookEventType.ORDER_REFUNDED: UpstreamState.REFUNDED,
}


@attrs.frozen(kw_only=True)
class ParsedEvent:
    """The fields of a verified body, parsed by the edge. The ids are display text
    (`text_problem`); anything else is a malformed event."""

    event_id: str
    type: WebhookEventType
    upstream_order_id: str | None
    occurred_at: datetime | None

    def __attrs_post_init__(self) -> None:
        ids = (i for i in (self.event_id, self.upstream_order_id) if i is not None)
        if any(text_problem(i, max_length=MAX_EVENT_ID) for i in ids):
            raise WebhookRejected(reason=Rejection.MALFORMED_EVENT)


@attrs.frozen(kw_only=True)
class Receipt:
    duplicate: bool
    outcome: WebhookOutcome | None
    order_id: OrderId | None = None
    """The local order the event moved, if any."""
    key_ready: bool = False
    """The upstream key can now be downloaded: the caller should advance sourcing."""


class WebhookService:
    def __init__(self, store: Store, clock: Clock, secrets: Sequence[bytes]) -> None:
        self._store, self._clock, self._secrets = store, clock, tuple(secrets)

    def verify(self, request: WebhookRequest) -> None:
        """Size, headers, timestamp and signature; WebhookRejected otherwise. Pure: safe to
        call before the body is parsed."""
        if not self._secrets:
            raise WebhooksNotConfigured()
        rejection = verify_webhook(request, self._secrets, self._clock.now())
        if rejection is not None:
            raise WebhookRejected(reason=rejection)

    async def accept(self, nonce: str, event: ParsedEvent, payload: bytes) -> Receipt:
        """Remember the nonce, store the event and apply it to its order, in one transaction.
        A replayed nonce raises WebhookRejected; a known event_id raises DuplicateEvent, and
        nothing of the delivery is kept (`receive` answers it as a duplicate)."""
        async with self._store.transaction() as tx:
            now = self._clock.now()
            if not await tx.webhooks.remember_nonce(nonce, now):
                raise WebhookRejected(reason=Rejection.REPLAYED_NONCE)
            receipt = await self._apply(tx, event, now)
            stored = WebhookEvent(
                event_id=event.event_id,
                type=event.type,
                upstream_order_id=event.upstream_order_id,
                occurred_at=event.occurred_at,
                received_at=now,
                outcome=receipt.outcome or WebhookOutcome.RECORDED,
                payload=payload,
            )
            if not await tx.webhooks.add_event(stored):
                raise DuplicateEvent(resource="webhook_event", id=event.event_id)
            return receipt

    async def receive(self, nonce: str, event: ParsedEvent, payload: bytes) -> Receipt:
        try:
            return await self.accept(nonce, event, payload)
        except DuplicateEvent:
            # Rolled back (the event's effect too); keep the nonce so this exact request
            # cannot be replayed either.
            async with self._store.transaction() as tx:
                await tx.webhooks.remember_nonce(nonce, self._clock.now())
            return Receipt(duplicate=True, outcome=None)

    async def _apply(self, tx: UnitOfWork, event: ParsedEvent, now: datetime) -> Receipt:
        state = EVENT_STATES.get(event.type)
        if state is None or event.upstream_order_id is None:
            return Receipt(duplicate=False, outcome=WebhookOutcome.RECORDED)
        order = await tx.orders.find_by_upstream_id(event.upstream_order_id, for_update=True)
        if order is None:
            return Receipt(duplicate=False, outcome=WebhookOutcome.UNMATCHED)
        if not order.record_upstream(state, now):
            return Receipt(duplicate=False, outcome=WebhookOutcome.STALE, order_id=order.id)
        await tx.orders.save(order)
        return Receipt(
            duplicate=False,
            outcome=WebhookOutcome.APPLIED,
            order_id=order.id,
            key_ready=state is UpstreamState.COMPLETE,
        )

    async def prune_nonces(self) -> int:
        cutoff = self._clock.now() - timedelta(seconds=NONCE_RETENTION_S)
        async with self._store.transaction() as tx:
            return await tx.webhooks.prune_nonces(cutoff)
