"""License keys: validation of uploaded lines, the key state machine, pools and their counts."""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import NewType

import attrs

from autokey.domain.model.errors import IllegalTransition, KeyNotAvailable
from autokey.domain.model.ids import KeyId, OrderId, PoolId, SubjectId
from autokey.domain.model.text import check_text

MIN_KEY_LENGTH = 5
MAX_KEY_LENGTH = 256
_DUPLICATE_MARK = b"duplicate:"


MasterKeyId = NewType("MasterKeyId", str)
"""The public name of a master key: 8 hex characters derived from it (a key check value)."""


def sealed_with(sealed: bytes) -> MasterKeyId:
    """The master key a sealed value names in its public header (ADR 0004: version (1 byte) |
    master key id (4 bytes) | nonce | ciphertext). The stores index the same four bytes."""
    return MasterKeyId(sealed[1:5].hex())


@attrs.frozen(kw_only=True)
class PinnedIndexKey:
    """The blind-index key a store's fingerprints are made with, sealed under a master key.

    A store pins one at first use and keeps it across master-key rotations (ADR 0011), so
    fingerprints never depend on which master key is current. `id` is public (a key check
    value of the index key); the key itself exists only inside `sealed`."""

    id: str
    sealed: bytes = attrs.field(repr=False)


MAX_POOL_NAME = 120


class KeyStatus(enum.StrEnum):
    AVAILABLE = "AVAILABLE"
    RESERVED = "RESERVED"
    DELIVERED = "DELIVERED"
    INVALID = "INVALID"


class KeyTransition(enum.Enum):
    """The named moves of the key state machine, as (source, target).

    The model's methods perform them by name, and each SQL statement that changes a key's
    status is built from the one it performs, so the two can be checked against each other."""

    RESERVE = (KeyStatus.AVAILABLE, KeyStatus.RESERVED)
    RELEASE = (KeyStatus.RESERVED, KeyStatus.AVAILABLE)
    DELIVER = (KeyStatus.RESERVED, KeyStatus.DELIVERED)
    INVALIDATE = (KeyStatus.AVAILABLE, KeyStatus.INVALID)

    @property
    def source(self) -> KeyStatus:
        return self.value[0]

    @property
    def target(self) -> KeyStatus:
        return self.value[1]


KEY_TRANSITIONS: Mapping[KeyStatus, frozenset[KeyStatus]] = {
    status: frozenset(t.target for t in KeyTransition if t.source is status) for status in KeyStatus
}
"""Every legal key transition. DELIVERED and INVALID are terminal."""


class LineProblem(enum.StrEnum):
    """Why one uploaded line was not stored. Values are the wire codes."""

    INVALID_LENGTH = "invalid_length"
    INVALID_CHARACTERS = "invalid_characters"
    DUPLICATE = "duplicate"


def check_key_text(text: str) -> LineProblem | None:
    """Validate an already trimmed key: 5..256 characters, no whitespace or control characters."""
    if not MIN_KEY_LENGTH <= len(text) <= MAX_KEY_LENGTH:
        return LineProblem.INVALID_LENGTH
    if text.isascii():
        # The usual key, checked in C: printable ASCII is every category but C (controls)
        # and Z, of which ASCII has only the space.
        ok = text.isprintable() and " " not in text
        return None if ok else LineProblem.INVALID_CHARACTERS
    if any(ch.isspace() or unicodedata.category(ch)[0] in "CZ" for ch in text):
        return LineProblem.INVALID_CHARACTERS
    return None


@attrs.frozen(kw_only=True)
class KeyPool:
    """A seller's inventory of keys, under a display name (see `check_text`)."""

    id: PoolId
    seller_id: SubjectId
    name: str
    created_at: datetime

    def __attrs_post_init__(self) -> None:
        check_text("name", self.name, max_length=MAX_POOL_NAME)

    @property
    def owner_id(self) -> SubjectId:
        return self.seller_id


@attrs.frozen(kw_only=True)
class PoolCounts:
    """How many keys of a pool are in each status."""

    available: int = 0
    reserved: int = 0
    delivered: int = 0
    invalid: int = 0

    @property
    def total(self) -> int:
        return self.available + self.reserved + self.delivered + self.invalid

    @classmethod
    def from_mapping(cls, counts: Mapping[KeyStatus, int]) -> PoolCounts:
        return cls(
            available=counts.get(KeyStatus.AVAILABLE, 0),
            reserved=counts.get(KeyStatus.RESERVED, 0),
            delivered=counts.get(KeyStatus.DELIVERED, 0),
            invalid=counts.get(KeyStatus.INVALID, 0),
        )


@attrs.define(kw_only=True)
class Key:
    """One license key. The plaintext lives only inside `sealed` (AES-GCM) and is never held here.

    `fingerprint` is the keyed blind index used for de-duplication across all pools.
    """

    id: KeyId
    pool_id: PoolId
    status: KeyStatus
    sealed: bytes = attrs.field(repr=False)
    fingerprint: bytes = attrs.field(repr=False)
    created_at: datetime
    order_id: OrderId | None = None
    reserved_at: datetime | None = None
    delivered_at: datetime | None = None

    def keep_as_duplicate(self) -> None:
        """Store this key although its plaintext is stored already (a key bought upstream
        must reach its buyer): its fingerprint becomes a per-key marker, unique and never
        equal to a blind index (26 bytes, not 32), so the stored original goes on
        de-duplicating uploads."""
        self.fingerprint = _DUPLICATE_MARK + self.id.bytes

    def _move(self, transition: KeyTransition) -> None:
        if self.status is not transition.source:
            raise IllegalTransition(
                resource="key", id=str(self.id), current=self.status, target=transition.target
            )
        self.status = transition.target

    def invalidate(self) -> None:
        """AVAILABLE -> INVALID; any other status raises KeyNotAvailable."""
        if self.status is not KeyStatus.AVAILABLE:
            raise KeyNotAvailable(resource="key", id=str(self.id), status=self.status)
        self._move(KeyTransition.INVALIDATE)

    def set_aside(self) -> None:
        """AVAILABLE or RESERVED -> INVALID (releasing it first): its material cannot be
        decrypted, so it must never be sold or delivered."""
        if self.status is KeyStatus.RESERVED:
            self.release()
        self.invalidate()

    def reserve(self, order_id: OrderId, now: datetime) -> None:
        if self.status is not KeyStatus.AVAILABLE:
            raise KeyNotAvailable(resource="key", id=str(self.id), status=self.status)
        self._move(KeyTransition.RESERVE)
        self.order_id, self.reserved_at = order_id, now

    def release(self) -> None:
        """RESERVED -> AVAILABLE, forgetting the order."""
        self._move(KeyTransition.RELEASE)
        self.order_id, self.reserved_at = None, None

    def deliver(self, now: datetime) -> None:
        """RESERVED -> DELIVERED to the order that reserved it."""
        self._move(KeyTransition.DELIVER)
        self.delivered_at = now


MAX_REPORTED_LINE_ERRORS = 1000


@attrs.frozen(kw_only=True)
class LineError:
    line: int
    """1-based line of the upload (the array position for JSON uploads)."""
    code: LineProblem


@attrs.define(kw_only=True)
class UploadReport:
    """What an upload did, line by line. Never holds key text."""

    added: int = 0
    duplicates: int = 0
    invalid: int = 0
    errors: list[LineError] = attrs.Factory(list)
    errors_truncated: bool = False

    def reject(self, line: int, problem: LineProblem) -> None:
        if problem is LineProblem.DUPLICATE:
            self.duplicates += 1
        else:
            self.invalid += 1
        if len(self.errors) < MAX_REPORTED_LINE_ERRORS:
            self.errors.append(LineError(line=line, code=problem))
        else:
            self.errors_truncated = True
