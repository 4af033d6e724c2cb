"""Issuing API tokens and resolving the principal behind one."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from autokey.domain.model.auth import MAX_TOKEN_NAME, ApiToken, Principal, Role
from autokey.domain.model.errors import Unauthenticated
from autokey.domain.model.ids import SubjectId, TokenId
from autokey.domain.model.text import check_text
from autokey.ports.crypto import SecretHasher
from autokey.ports.store import RevocationWatch, Store
from autokey.ports.system import Clock, IdGenerator

MAX_CACHED_PRINCIPALS = 10_000
T = TypeVar("T")


class RevocationCache(Generic[T]):
    """What a secret's hash resolved to, kept while no revocation has been announced since
    (ADR 0017): an entry serves only under the `RevocationWatch` epoch it was read in. Without
    a watch (or while it is not listening) nothing is cached. At most MAX_CACHED_PRINCIPALS
    entries (cleared when full)."""

    def __init__(self, revocations: RevocationWatch | None) -> None:
        self._revocations = revocations
        self._entries: dict[bytes, tuple[int, T]] = {}

    async def resolve(self, digest: bytes, lookup: Callable[[], Awaitable[T | None]]) -> T | None:
        """The value cached for `digest`, or what `lookup` finds (kept unless None, so that
        guessing cannot fill the cache, and unless a revocation was announced meanwhile)."""
        epoch = self._epoch()
        cached = self._entries.get(digest)
        if epoch is not None and cached is not None and cached[0] == epoch:
            return cached[1]
        value = await lookup()
        if value is not None and epoch is not None and self._epoch() == epoch:
            if len(self._entries) >= MAX_CACHED_PRINCIPALS:
                self._entries.clear()
            self._entries[digest] = (epoch, value)
        return value

    def _epoch(self) -> int | None:
        return None if self._revocations is None else self._revocations.epoch()


class AuthService:
    def __init__(
        self,
        store: Store,
        hasher: SecretHasher,
        clock: Clock,
        ids: IdGenerator,
        revocations: RevocationWatch | None = None,
    ) -> None:
        """Without `revocations` every call looks its token up; with one, principals are
        cached (by secret hash) for as long as its epoch does not change."""
        self._store, self._hasher, self._clock, self._ids = store, hasher, clock, ids
        self._used: dict[TokenId, datetime] = {}
        """Tokens seen since the last `flush_usage`: kept in memory so that authenticating
        writes nothing on the request path."""
        self._principals = RevocationCache[Principal](revocations)

    async def issue_token(
        self, role: Role, subject: SubjectId | None = None, name: str = ""
    ) -> tuple[str, ApiToken]:
        """Create a token; returns the secret (shown once, never stored) and its record.
        InvalidInput when `name` breaks the display-text rule. (Not checked when a stored
        token is loaded: a name written before the rule must not lock its holder out.)"""
        check_text("name", name, max_length=MAX_TOKEN_NAME, min_length=0)
        secret = self._hasher.new_secret()
        token = ApiToken(
            id=TokenId(self._ids.new_id()),
            subject=subject or SubjectId(uuid.uuid4()),
            role=role,
            name=name,
            secret_hash=self._hasher.digest(secret),
            created_at=self._clock.now(),
        )
        async with self._store.transaction() as tx:
            await tx.tokens.add(token)
        return secret, token

    async def revoke(self, token_id: TokenId) -> bool:
        """Revoke a token now; False if unknown or already revoked."""
        async with self._store.transaction() as tx:
            return await tx.tokens.revoke(token_id, self._clock.now())

    async def authenticate(self, secret: str) -> Principal:
        """The principal of a bearer secret; Unauthenticated if malformed, unknown or revoked.
        Secrets are printable ASCII, so anything else is refused before it is hashed. A token
        revoked in any process is refused from the announcement of its revocation on."""
        if not (secret.isascii() and secret.isprintable()):
            raise Unauthenticated(reason="malformed_token")
        digest = self._hasher.digest(secret)

        async def lookup() -> Principal | None:
            async with self._store.transaction() as tx:
                token = await tx.tokens.find_by_secret_hash(digest)
            return None if token is None or token.revoked_at is not None else token.principal

        principal = await self._principals.resolve(digest, lookup)
        if principal is None:
            raise Unauthenticated(reason="unknown_token")
        if principal.token_id is not None:
            self._used[principal.token_id] = self._clock.now()
        return principal

    async def flush_usage(self) -> int:
        """Record when each token seen since the last flush was last used; returns how many.
        Run by housekeeping: `last_used_at` is exact to within its interval."""
        used, self._used = self._used, {}
        if used:
            try:
                async with self._store.transaction() as tx:
                    await tx.tokens.record_use(used)
            except BaseException:
                self._used = used | self._used  # kept for the next flush
                raise
        return len(used)

    async def list_tokens(self) -> Sequence[ApiToken]:
        """Every token with its metadata (the secret is never stored, so never listed)."""
        await self.flush_usage()
        async with self._store.transaction() as tx:
            return await tx.tokens.list_all()
