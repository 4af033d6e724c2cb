"""Idempotency records: one per (scope, key), replaying the first response."""

from __future__ import annotations

import enum
import math
from datetime import datetime

import attrs

IDEMPOTENCY_RETENTION_S = 24 * 3600
DEFAULT_LEASE_S = 10
"""A request that crashed (or whose clean-up failed) leaves its record in flight; after the
lease a retry may take it over. A slow first request that outlives its lease cannot complete
any more (`is_held_by`), so a short lease never lets an effect happen twice."""
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

    def is_held_by(self, claim: IdempotencyRecord) -> bool:
        """Still in flight under `claim` (no later request has taken it over)."""
        return self.state is IdempotencyState.IN_FLIGHT and self.locked_until == claim.locked_until

    def lease_left_s(self, now: datetime) -> int:
        """Whole seconds until a retry may take the record over (at least 1)."""
        return max(1, math.ceil((self.locked_until - now).total_seconds()))
