"""Idempotency records: one per (scope, key), replaying the first response."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

IDEMPOTENCY_RETENTION_S = 24 * 3600
IN_FLIGHT_LEASE_S = 60
"""A request that crashed leaves its record in flight; after the lease a retry may take over."""
MAX_KEY_LENGTH = 255


class IdempotencyState(enum.StrEnum):
    IN_FLIGHT = "in_flight"
    COMPLETED = "completed"


@attrs.frozen(kw_only=True)
class StoredResponse:
    status: int
    body: bytes = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class IdempotencyRecord:
    """`scope` identifies the principal and operation; `fingerprint` digests the request."""

    scope: str
    key: str
    fingerprint: bytes
    state: IdempotencyState
    created_at: datetime
    locked_until: datetime
    expires_at: datetime
    response: StoredResponse | None = None

    def is_live(self, now: datetime) -> bool:
        return now < self.expires_at

    def is_locked(self, now: datetime) -> bool:
        return self.state is IdempotencyState.IN_FLIGHT and now < self.locked_until
