"""Cryptography as the domain needs it: sealing key plaintexts, blind indexes, token secrets."""

from __future__ import annotations

from typing import Protocol


class KeyCipher(Protocol):
    """Authenticated encryption of key plaintexts, bound to their row."""

    def seal(self, plaintext: str, *, context: bytes) -> bytes:
        """Encrypt `plaintext`; `context` (pool id + key id) is authenticated but not stored.

        Every call uses a fresh nonce, so sealing the same plaintext twice gives different bytes.
        """
        ...

    def open(self, sealed: bytes, *, context: bytes) -> str:
        """Decrypt; raise `KeyMaterialUnreadable` if the bytes were altered, moved to another
        context, or sealed with a master key this cipher does not hold."""
        ...


class BlindIndex(Protocol):
    def fingerprint(self, plaintext: str) -> bytes:
        """A keyed digest of `plaintext`: equal plaintexts give equal fingerprints,
        and without the master key it cannot be brute-forced from low-entropy keys."""
        ...


class SecretHasher(Protocol):
    def new_secret(self) -> str:
        """A fresh, high-entropy, URL-safe secret (an API token)."""
        ...

    def digest(self, secret: str) -> bytes:
        """The stored form of a secret; deterministic, so it can be looked up."""
        ...
