"""Audit events about one order, the same way in every use case."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from autokey.domain.model.audit import AuditAction, AuditEvent
from autokey.domain.model.auth import Principal
from autokey.domain.model.ids import EventId, KeyId
from autokey.domain.model.merchant import channel_of
from autokey.domain.model.orders import Order
from autokey.ports.system import Clock, IdGenerator


def order_event(
    ids: IdGenerator,
    clock: Clock,
    action: AuditAction,
    order: Order,
    *,
    actor: Principal | None = None,
    key_ids: Sequence[KeyId] = (),
    details: Mapping[str, str | int] | None = None,
) -> AuditEvent:
    """`action` on `order` (and `key_ids`) now, by `actor` (None: autokey itself), with the
    order's channel among the details."""
    return AuditEvent(
        id=EventId(ids.new_id()),
        occurred_at=clock.now(),
        action=action,
        actor=actor.subject if actor else None,
        pool_id=order.pool_id,
        order_id=order.id,
        key_ids=tuple(key_ids),
        details={"channel": channel_of(order.buyer_id), **(details or {})},
    )
