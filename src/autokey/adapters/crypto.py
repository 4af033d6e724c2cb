"""AES-256-GCM key sealing, the HMAC blind index and API token secrets.

Sealed layout: version (1 byte) | master key id (4 bytes) | nonce (12 bytes) | ciphertext+tag.
The associated data is the caller's context (pool id + key id), so a sealed value copied
into another row fails authentication. The blind-index key is a separate random key that the
store pins, sealed like a key plaintext (ADR 0011).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from autokey.domain.model.errors import KeyMaterialUnreadable
from autokey.domain.model.keys import MasterKeyId
from autokey.ports.crypto import BlindIndex, BlindIndexKeys, KeyCipher, SecretHasher

_VERSION = 1
_NONCE_BYTES = 12
_HEADER = 1 + 4 + _NONCE_BYTES
MASTER_KEY_BYTES = 32
TOKEN_PREFIX = "ak_"  # noqa: S105 - a public prefix, not a secret


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


def _key_id_bytes(master: bytes) -> bytes:
    """A public 4-byte name for a master key, stored in every sealed value."""
    return _derive(master, b"autokey/key-id/v1")[:4]


def master_key_id(master: bytes) -> MasterKeyId:
    """The public id of a master key (hex of the 4 bytes every sealed value carries)."""
    return MasterKeyId(_key_id_bytes(master).hex())


def parse_master_key(hex_text: str) -> bytes:
    """64 hex characters -> 32 bytes; ValueError (without the value) otherwise."""
    try:
        key = bytes.fromhex(hex_text.strip())
    except ValueError:
        raise ValueError("must be 64 hexadecimal characters") from None
    if len(key) != MASTER_KEY_BYTES:
        raise ValueError("must be 64 hexadecimal characters (32 bytes)")
    return key


def load_or_create_key_file(path: Path) -> tuple[bytes, bool]:
    """Read a development master key from `path`, creating it (mode 0600) if absent.

    Returns the key and whether it was created now.
    """
    try:
        return parse_master_key(path.read_text()), False
    except FileNotFoundError:
        pass
    key = os.urandom(MASTER_KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
    return key, True


class AesGcmKeyCipher(KeyCipher):
    """Seals with the first master key; opens with any key of the ring (rotation)."""

    def __init__(self, master_keys: Sequence[bytes]) -> None:
        if not master_keys:
            raise ValueError("at least one master key is required")
        self._ring = {_key_id_bytes(k): AESGCM(_derive(k, b"autokey/seal/v1")) for k in master_keys}
        self._current_id = _key_id_bytes(master_keys[0])
        self._current = self._ring[self._current_id]

    def __repr__(self) -> str:
        return f"AesGcmKeyCipher(keys={len(self._ring)})"

    @property
    def key_ids(self) -> tuple[MasterKeyId, ...]:
        return tuple(MasterKeyId(i.hex()) for i in self._ring)

    def seal(self, plaintext: str, *, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        header = bytes([_VERSION]) + self._current_id + nonce
        return header + self._current.encrypt(nonce, plaintext.encode(), header + context)

    def open(self, sealed: bytes, *, context: bytes) -> str:
        aead = self._ring.get(sealed[1:5])
        if len(sealed) <= _HEADER or sealed[0] != _VERSION or aead is None:
            raise KeyMaterialUnreadable()
        header = sealed[:_HEADER]
        try:
            return aead.decrypt(sealed[5:_HEADER], sealed[_HEADER:], header + context).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise KeyMaterialUnreadable() from None


class HmacBlindIndex(BlindIndex):
    """HMAC-SHA256 under the store's pinned index key."""

    def __init__(self, index_key: bytes) -> None:
        self._key = index_key

    def __repr__(self) -> str:
        return "HmacBlindIndex()"

    def fingerprint(self, plaintext: str) -> bytes:
        return hmac.digest(self._key, plaintext.encode(), "sha256")


class HmacBlindIndexKeys(BlindIndexKeys):
    """Random 256-bit index keys; before ADR 0011 they were derived (HKDF) from a master key."""

    def __init__(self, master_keys: Sequence[bytes]) -> None:
        self._masters = tuple(master_keys)

    def __repr__(self) -> str:
        return f"HmacBlindIndexKeys(keys={len(self._masters)})"

    def new_key(self) -> str:
        return os.urandom(32).hex()

    def key_id(self, index_key: str) -> str:
        return hmac.digest(bytes.fromhex(index_key), b"autokey/index-key-id/v1", "sha256")[:4].hex()

    def legacy_keys(self) -> tuple[str, ...]:
        return tuple(_derive(m, b"autokey/blind-index/v1").hex() for m in self._masters)

    def blind_index(self, index_key: str) -> HmacBlindIndex:
        return HmacBlindIndex(bytes.fromhex(index_key))


class Sha256SecretHasher(SecretHasher):
    """Tokens carry 256 random bits, so a plain SHA-256 is a sufficient stored form."""

    def new_secret(self) -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    def digest(self, secret: str) -> bytes:
        return hashlib.sha256(secret.encode()).digest()
