"""AES-GCM sealing bound to its row, the blind index, token secrets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autokey.adapters.crypto import (
    AesGcmKeyCipher,
    HmacBlindIndex,
    HmacBlindIndexKeys,
    Sha256SecretHasher,
    load_or_create_key_file,
    master_key_id,
    parse_master_key,
)
from autokey.domain.model.errors import KeyMaterialUnreadable
from autokey.domain.model.keys import sealed_with

MASTER = bytes(range(32))
CONTEXT = b"p" * 16 + b"k" * 16


@given(st.text(min_size=8, max_size=300))
def test_seal_open_round_trip_with_fresh_nonces(plaintext: str) -> None:
    cipher = AesGcmKeyCipher([MASTER])
    sealed = cipher.seal(plaintext, context=CONTEXT)
    assert cipher.open(sealed, context=CONTEXT) == plaintext
    assert cipher.seal(plaintext, context=CONTEXT) != sealed
    assert plaintext.encode() not in sealed


def test_ciphertext_moved_to_another_row_fails_to_decrypt() -> None:
    cipher = AesGcmKeyCipher([MASTER])
    sealed = cipher.seal("ABCDE-12345", context=CONTEXT)
    with pytest.raises(KeyMaterialUnreadable):
        cipher.open(sealed, context=b"p" * 16 + b"x" * 16)


@pytest.mark.parametrize("position", [0, 1, 6, 20, -1])
def test_any_flipped_byte_fails_to_decrypt(position: int) -> None:
    cipher = AesGcmKeyCipher([MASTER])
    sealed = bytearray(cipher.seal("ABCDE-12345", context=CONTEXT))
    sealed[position] ^= 0x01
    with pytest.raises(KeyMaterialUnreadable):
        cipher.open(bytes(sealed), context=CONTEXT)


def test_rotation_opens_old_ciphertexts_and_seals_with_the_new_key() -> None:
    old, new = AesGcmKeyCipher([MASTER]), AesGcmKeyCipher([os.urandom(32), MASTER])
    sealed = old.seal("ABCDE-12345", context=CONTEXT)
    assert new.open(sealed, context=CONTEXT) == "ABCDE-12345"
    with pytest.raises(KeyMaterialUnreadable):
        old.open(new.seal("ABCDE-12345", context=CONTEXT), context=CONTEXT)


def test_blind_index_is_keyed_and_deterministic() -> None:
    index, other = HmacBlindIndex(MASTER), HmacBlindIndex(os.urandom(32))
    assert index.fingerprint("ABCDE") == index.fingerprint("ABCDE")
    assert index.fingerprint("ABCDE") != other.fingerprint("ABCDE")
    assert index.fingerprint("ABCDE") != __import__("hashlib").sha256(b"ABCDE").digest()


def test_nothing_secret_in_reprs() -> None:
    assert MASTER.hex() not in repr(AesGcmKeyCipher([MASTER]))
    assert MASTER.hex() not in repr(HmacBlindIndex(MASTER))


def test_token_secrets_are_unique_and_hash_stably() -> None:
    hasher = Sha256SecretHasher()
    first, second = hasher.new_secret(), hasher.new_secret()
    assert first != second
    assert first.startswith("ak_")
    assert len(first) > 40
    assert hasher.digest(first) == hasher.digest(first) != hasher.digest(second)


def test_dev_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "autokey.key"
    key, created = load_or_create_key_file(path)
    assert created
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key_file(path) == (key, False)


@pytest.mark.parametrize("bad", ["", "zz" * 32, "ab" * 31, "ab" * 33])
def test_master_key_must_be_64_hex_and_errors_do_not_echo_it(bad: str) -> None:
    with pytest.raises(ValueError, match="64 hexadecimal") as caught:
        parse_master_key(bad)
    assert not bad or bad not in str(caught.value)


def test_master_key_ids_are_public_names_in_every_sealed_value() -> None:
    other = os.urandom(32)
    cipher = AesGcmKeyCipher([other, MASTER])
    assert cipher.key_ids == (master_key_id(other), master_key_id(MASTER))
    assert len(master_key_id(MASTER)) == 8
    assert MASTER.hex()[:8] != master_key_id(MASTER)
    assert sealed_with(cipher.seal("ABCDE-1", context=CONTEXT)) == master_key_id(other)
    assert sealed_with(AesGcmKeyCipher([MASTER]).seal("x", context=CONTEXT)) == master_key_id(
        MASTER
    )


def test_index_key_ids_name_the_index_key_not_the_master_key() -> None:
    keys = HmacBlindIndexKeys([MASTER])
    fresh = keys.new_key()
    assert keys.new_key() != fresh
    assert keys.key_id(fresh) == keys.key_id(fresh)
    assert keys.key_id(fresh) != keys.key_id(keys.legacy_keys()[0])
    assert fresh not in repr(keys)
    assert MASTER.hex() not in repr(keys)
