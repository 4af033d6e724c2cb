"""Idempotency records: one per (scope, key), replaying the first response."""

from __future__ import annotations

import enum
import math
from datetime import datetime, timedelta

import attrs

from autokey.domain.model.errors import IdempotencyInFlight, IdempotencyKeyReused

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

    @classmethod
    def claim(
        cls, scope: str, key: str, fingerprint: bytes, now: datetime, lease_s: int
    ) -> IdempotencyRecord:
        """A request's hold on its key: in flight for `lease_s`, kept for a day."""
        return cls(
            scope=scope,
            key=key,
            fingerprint=fingerprint,
            state=IdempotencyState.IN_FLIGHT,
            created_at=now,
            locked_until=now + timedelta(seconds=lease_s),
            expires_at=now + timedelta(seconds=IDEMPOTENCY_RETENTION_S),
        )

    def replay_for(self, fingerprint: bytes, now: datetime) -> StoredResponse | None:
        """What a request with this key and `fingerprint` gets: the stored response, or None
        when it may take the key over (expired, or its first request died or outlived its
        lease). IdempotencyInFlight while the first request holds its lease;
        IdempotencyKeyReused for another request under the same key."""
        if not self.is_live(now):
            return None
        if self.is_locked(now):
            raise IdempotencyInFlight(
                resource="idempotency_key", id=self.key, retry_after_s=self.lease_left_s(now)
            )
        if self.fingerprint != fingerprint:
            raise IdempotencyKeyReused(key=self.key)
        return self.response

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
