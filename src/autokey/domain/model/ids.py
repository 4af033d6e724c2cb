"""Identifiers: UUIDs, time-ordered (UUIDv7) when new, so ids double as keyset cursors."""

from typing import NewType
from uuid import UUID

PoolId = NewType("PoolId", UUID)
KeyId = NewType("KeyId", UUID)
OfferId = NewType("OfferId", UUID)
OrderId = NewType("OrderId", UUID)
SubjectId = NewType("SubjectId", UUID)
"""A seller, buyer or admin: whoever an API token speaks for."""
TokenId = NewType("TokenId", UUID)
EventId = NewType("EventId", UUID)
EndpointId = NewType("EndpointId", UUID)
"""A seller's outbound webhook endpoint."""
DeliveryId = NewType("DeliveryId", UUID)
"""One outbound webhook event for one endpoint (also the `webhook-id` header)."""
