"""The one rooted error tree of autokey.

Errors carry fields, never pre-formatted messages; the HTTP edge turns them into
RFC 9457 problems from a single ordered table.

    AutokeyError
    ├── DomainError                  a request the rules refuse
    │   ├── NotFound                 resource absent, or not visible to the caller
    │   ├── InvalidInput             a field or body fails validation
    │   │   ├── UploadTooLarge       an upload over one of its caps (JSON: keys per request)
    │   │   │   ├── TooManyLines     a text upload over its line cap (blank lines count)
    │   │   │   └── BodyTooLarge     a text upload over its byte cap (after decompression)
    │   │   └── CorruptBody          a body that does not decode (Content-Encoding, chunks)
    │   ├── Unauthenticated          no or unknown credentials
    │   ├── Forbidden                authenticated, but the role may not do this
    │   ├── Conflict                 the resource's state forbids the change
    │   │   ├── KeyNotAvailable      only an AVAILABLE key can be invalidated or reserved
    │   │   ├── IllegalTransition    a state machine refused a transition
    │   │   ├── IdempotencyInFlight  same Idempotency-Key still being processed
    │   │   ├── OrderNotPaid         only a PAID (or FULFILLED) order can be fulfilled
    │   │   ├── OrderKeysUnreadable  a paid order canceled because its keys cannot be decrypted
    │   │   ├── ReservationExpired   the order's key reservation ran out before payment
    │   │   ├── OrderExists          G2A ordered this reservation already (never delivers again)
    │   │   └── DuplicateResource    a unique value exists already
    │   │       └── DuplicateEvent   a webhook event delivered before (its effect is rolled back)
    │   ├── UnstorableValue          the database refused a value of the request (NUL, range)
    │   ├── IdempotencyKeyReused     same Idempotency-Key, different request
    │   ├── RateLimited              a caller spent its allowance; retry after retry_after_s
    │   ├── OfferNotAvailable        offer inactive, draft or unknown to the buyer
    │   ├── OutOfStock               fewer available keys than asked for
    │   ├── StockBusy                keys exist but other transactions hold them; retry soon
    │   ├── WebhookRejected          a webhook failed verification (signature, time, nonce, shape)
    │   ├── WebhooksNotConfigured    no webhook secret is configured
    │   └── PaymentsNotConfigured    no payment adapter in this deployment
    └── InfrastructureError          something outside the domain failed
        ├── StoreUnavailable         the database cannot be reached (outage, timeout)
        │   └── StaleRead            a kept copy of a row no longer matches it: run again
        ├── StoreFault               the database refused a statement as wrong: a bug
        ├── KeyMaterialUnreadable    sealed key bytes fail to decrypt (tampered, moved, unknown key)
        ├── KeyringMismatch          the configured master keys do not fit the store (startup)
        └── UpstreamError            a marketplace (G2A) call failed
            ├── UpstreamAuthError    credentials refused (401/403)
            ├── UpstreamRateLimited  still 429 after the retries allowed
            ├── UpstreamNotFound     the marketplace has no such product/order
            ├── UpstreamRejected     any other 4xx, with the marketplace's own code
            ├── UpstreamUnavailable  5xx, timeouts or connection errors after retries
            └── UpstreamProtocolError  a body that does not match the contract
"""

from __future__ import annotations

import enum

import attrs


@attrs.define(kw_only=True)
class AutokeyError(Exception):
    """Root of every error autokey raises on purpose."""


@attrs.define(kw_only=True)
class DomainError(AutokeyError):
    """A request that the domain rules refuse."""


@attrs.define(kw_only=True)
class NotFound(DomainError):
    resource: str
    id: str


@attrs.define(kw_only=True)
class FieldProblem:
    field: str
    code: str


@attrs.define(kw_only=True)
class InvalidInput(DomainError):
    problems: tuple[FieldProblem, ...]

    @classmethod
    def of(cls, field: str, code: str) -> InvalidInput:
        return cls(problems=(FieldProblem(field=field, code=code),))


@attrs.define(kw_only=True)
class UploadTooLarge(InvalidInput):
    limit: int


@attrs.define(kw_only=True)
class TooManyLines(UploadTooLarge):
    pass


@attrs.define(kw_only=True)
class BodyTooLarge(UploadTooLarge):
    pass


@attrs.define(kw_only=True)
class CorruptBody(InvalidInput):
    encoding: str


@attrs.define(kw_only=True)
class Unauthenticated(DomainError):
    reason: str


@attrs.define(kw_only=True)
class Forbidden(DomainError):
    action: str


@attrs.define(kw_only=True)
class Conflict(DomainError):
    resource: str
    id: str


@attrs.define(kw_only=True)
class KeyNotAvailable(Conflict):
    status: str


@attrs.define(kw_only=True)
class IllegalTransition(Conflict):
    current: str
    target: str


@attrs.define(kw_only=True)
class IdempotencyInFlight(Conflict):
    retry_after_s: int


@attrs.define(kw_only=True)
class DuplicateResource(Conflict):
    pass


@attrs.define(kw_only=True)
class DuplicateEvent(DuplicateResource):
    """A marketplace event whose id was stored before: what this delivery changed is rolled
    back, and the receiver answers it as a duplicate (never an error on the wire)."""


@attrs.define(kw_only=True)
class OrderNotPaid(Conflict):
    status: str


@attrs.define(kw_only=True)
class OrderKeysUnreadable(Conflict):
    """The order was paid, its keys could not be decrypted and the pool had no replacement:
    the keys were set aside (INVALID) and the order CANCELED (the buyer is owed a refund)."""


@attrs.define(kw_only=True)
class ReservationExpired(Conflict):
    pass


@attrs.define(kw_only=True)
class UnstorableValue(DomainError):
    """The database refused a value of the request as data (a NUL character, a number out
    of its range, a character it cannot encode): input the edge should have refused. Names
    no field and echoes no value."""


@attrs.define(kw_only=True)
class OrderExists(Conflict):
    order_id: str


@attrs.define(kw_only=True)
class IdempotencyKeyReused(DomainError):
    key: str


@attrs.define(kw_only=True)
class RateLimited(DomainError):
    limit: str
    """Which allowance: uploads, orders, writes or auth_failures."""
    retry_after_s: int


@attrs.define(kw_only=True)
class OfferNotAvailable(DomainError):
    offer_id: str


@attrs.define(kw_only=True)
class OutOfStock(DomainError):
    offer_id: str
    requested: int
    available: int


@attrs.define(kw_only=True)
class StockBusy(DomainError):
    offer_id: str


@attrs.define(kw_only=True)
class WebhookRejected(DomainError):
    reason: str
    """A `Rejection` value: invalid_signature, stale_timestamp, replayed_nonce, ..."""


@attrs.define(kw_only=True)
class WebhooksNotConfigured(DomainError):
    pass


@attrs.define(kw_only=True)
class PaymentsNotConfigured(DomainError):
    pass


@attrs.define(kw_only=True)
class InfrastructureError(AutokeyError):
    """Something outside the domain failed; the request may succeed later."""


@attrs.define(kw_only=True)
class StoreUnavailable(InfrastructureError):
    store: str


@attrs.define(kw_only=True)
class StaleRead(StoreUnavailable):
    """An optimistic transaction (`Store.transaction(optimistic=True)`) read a row from a copy
    the store keeps, and the row no longer matched it, or the step failed after such a read.
    Nothing of the transaction was kept; run the step again in a plain transaction."""


@attrs.define(kw_only=True)
class StoreFault(InfrastructureError):
    """The database refused a statement as wrong (bad SQL, a missing table or column, a
    schema out of step): a bug, not an outage, so retrying will not help."""

    store: str


@attrs.define(kw_only=True)
class KeyMaterialUnreadable(InfrastructureError):
    """Deliberately carries no detail: nothing about the ciphertext may leak."""


class KeyringProblem(enum.StrEnum):
    MASTER_KEYS_MISSING = "master_keys_missing"
    """Stored rows are sealed under master keys that are not configured."""
    INDEX_KEY_NOT_REPRODUCIBLE = "index_key_not_reproducible"
    """The configured master keys cannot recover the index key the fingerprints were made with."""
    SCHEMA_OUTDATED = "schema_outdated"
    """The database lacks the migrations that record key ids (run `autokey migrate`)."""


@attrs.define(kw_only=True)
class KeyringMismatch(InfrastructureError):
    """The startup check refused the configured master keys. Carries public key ids only."""

    problem: KeyringProblem
    missing: tuple[str, ...] = ()
    """Master key ids stored rows need that are not configured."""
    configured: tuple[str, ...] = ()
    """The configured master key ids, current first."""
    index_key_id: str | None = None
    """The id of the index key the store pinned."""


@attrs.define(kw_only=True)
class UpstreamError(InfrastructureError):
    """A call to an external marketplace failed. `code` is the marketplace's own error code."""

    upstream: str
    operation: str
    status: int | None = None
    code: str | None = None


@attrs.define(kw_only=True)
class UpstreamAuthError(UpstreamError):
    pass


@attrs.define(kw_only=True)
class UpstreamRateLimited(UpstreamError):
    retry_after_s: float | None = None


@attrs.define(kw_only=True)
class UpstreamNotFound(UpstreamError):
    pass


@attrs.define(kw_only=True)
class UpstreamRejected(UpstreamError):
    pass


@attrs.define(kw_only=True)
class UpstreamUnavailable(UpstreamError):
    attempts: int = 1


@attrs.define(kw_only=True)
class UpstreamProtocolError(UpstreamError):
    pass
