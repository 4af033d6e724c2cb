"""Signing G2A-style webhooks (the simulator sends them); the scheme lives in the domain."""

from __future__ import annotations

from autokey.domain.model.webhooks import webhook_signature


def sign_webhook(secret: bytes, body: bytes, timestamp: str, nonce: str) -> str:
    """hex(HMAC-SHA256(key=secret, msg=raw_body + timestamp + nonce)) over the exact bytes."""
    return webhook_signature(secret, body, timestamp, nonce)
