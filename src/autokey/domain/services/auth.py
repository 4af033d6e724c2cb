"""Issuing API tokens and resolving the principal behind one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from autokey.domain.model.auth import MAX_TOKEN_NAME, ApiToken, Principal, Role
from autokey.domain.model.errors import Unauthenticated
from autokey.domain.model.ids import SubjectId, TokenId
from autokey.domain.model.text import check_text
from autokey.ports.crypto import SecretHasher
from autokey.ports.store import RevocationWatch, Store
from autokey.ports.system import Clock, IdGenerator

MAX_CACHED_PRINCIPALS = 10_000


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
        self._revocations = revocations
        self._principals: dict[bytes, tuple[int, Principal]] = {}

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
        epoch = None if self._revocations is None else self._revocations.epoch()
        cached = self._principals.get(digest)
        if epoch is not None and cached is not None and cached[0] == epoch:
            principal = cached[1]
            if principal.token_id is not None:
                self._used[principal.token_id] = self._clock.now()
            return principal
        async with self._store.transaction() as tx:
            token = await tx.tokens.find_by_secret_hash(digest)
        if token is None or token.revoked_at is not None:
            raise Unauthenticated(reason="unknown_token")
        self._used[token.id] = self._clock.now()
        # Cached only if no revocation was announced while it was looked up; unknown
        # secrets never are, so guessing cannot fill the cache.
        if epoch is not None and self._revocations and self._revocations.epoch() == epoch:
            if len(self._principals) >= MAX_CACHED_PRINCIPALS:
                self._principals.clear()
            self._principals[digest] = (epoch, token.principal)
        return token.principal

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
