"""Signature of G2A-style webhooks (autokey's definition, seed FR-006)."""

from __future__ import annotations

import hashlib
import hmac


def sign_webhook(secret: bytes, body: bytes, timestamp: str, nonce: str) -> str:
    """hex(HMAC-SHA256(key=secret, msg=raw_body + timestamp + nonce)) over the exact bytes."""
    message = body + timestamp.encode("ascii") + nonce.encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def webhook_signature_matches(
    secret: bytes, body: bytes, timestamp: str, nonce: str, signature: str
) -> bool:
    """Constant-time comparison of a received signature with the expected one."""
    expected = sign_webhook(secret, body, timestamp, nonce)
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode())
