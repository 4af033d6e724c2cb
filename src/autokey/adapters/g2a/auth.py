"""G2A authentication material: the Export API header, the seed's hash headers, and the
credential fingerprint that keys the token cache. Pure functions; values are secrets."""

from __future__ import annotations

import hashlib

SANDBOX_CLIENT_ID = "qdaiciDiyMaTjxMt"
SANDBOX_EMAIL = "sandboxapitest@g2a.com"
SANDBOX_CLIENT_SECRET = "b0d293f6-e1d2-4629-8264-fd63b5af3207b0d293f6-e1d2-4629-8264-fd63b5af3207"  # noqa: S105 - G2A's published sandbox pair
SANDBOX_API_KEY = "74026b3dc2c6db6a30a73e71cdb138b1e1b5eb7a97ced46689e2d28db1050875"


def export_api_key(client_id: str, email: str, client_secret: str) -> str:
    """G2A's "API key": hex(sha256(clientId + email + clientSecret))."""
    return hashlib.sha256((client_id + email + client_secret).encode("utf-8")).hexdigest()


def export_authorization(client_id: str, email: str, client_secret: str) -> str:
    """The Export API `Authorization` header value: `{clientId}, {apiKey}`."""
    return f"{client_id}, {export_api_key(client_id, email, client_secret)}"


def hash_signature(api_hash: str, api_key: str, timestamp: str) -> str:
    """The seed's FR-001b `X-G2A-Hash`: hex(sha256(G2A_API_HASH + G2A_API_KEY + timestamp))."""
    return hashlib.sha256((api_hash + api_key + timestamp).encode("utf-8")).hexdigest()


def hash_headers(api_hash: str, api_key: str, timestamp: str) -> dict[str, str]:
    """The seed's FR-001b headers, exactly as it writes them (token `hash` flow only).
    `X-API-HASH` carries G2A_API_HASH itself, as the seed specifies."""
    return {
        "X-API-HASH": api_hash,
        "X-API-KEY": api_key,
        "X-G2A-Timestamp": timestamp,
        "X-G2A-Hash": hash_signature(api_hash, api_key, timestamp),
    }


def oauth_form(client_id: str, client_secret: str) -> dict[str, str]:
    """The form body of G2A's documented `POST /oauth/token`."""
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }


def credentials_fingerprint(*parts: str) -> str:
    """A one-way digest of the credentials and endpoint a token belongs to; a cached token
    recorded under another fingerprint belongs to rotated credentials."""
    digest = hashlib.sha256("\x1f".join(("g2a-token-v1", *parts)).encode("utf-8"))
    return digest.hexdigest()[:32]
