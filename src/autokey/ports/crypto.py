"""Cryptography as the domain needs it: sealing key plaintexts, blind indexes, token secrets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from autokey.domain.model.keys import MasterKeyId


class KeyCipher(Protocol):
    """Authenticated encryption of key plaintexts, bound to their row."""

    @property
    def key_ids(self) -> Sequence[MasterKeyId]:
        """The ids of the configured master keys: the current one (which `seal` uses) first,
        then those `open` still accepts. Public values, never key material."""
        ...

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


class BlindIndexKeys(Protocol):
    """Making and naming blind-index keys. An index key is a secret, passed around as hex text
    so that it can be sealed like any key plaintext."""

    def new_key(self) -> str:
        """A fresh random index key."""
        ...

    def key_id(self, index_key: str) -> str:
        """The public id (a key check value) of `index_key`; equal keys give equal ids."""
        ...

    def legacy_keys(self) -> Sequence[str]:
        """The index keys that versions before ADR 0011 derived from each configured master
        key, to adopt a store whose fingerprints were made that way."""
        ...

    def blind_index(self, index_key: str) -> BlindIndex:
        """The blind index keyed by `index_key`."""
        ...


class SecretHasher(Protocol):
    def new_secret(self) -> str:
        """A fresh, high-entropy, URL-safe secret (an API token)."""
        ...

    def digest(self, secret: str) -> bytes:
        """The stored form of a secret; deterministic, so it can be looked up."""
        ...
