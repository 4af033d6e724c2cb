from __future__ import annotations

from autokey.adapters.g2a.auth import (
    SANDBOX_API_KEY,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_EMAIL,
    credentials_fingerprint,
    export_api_key,
    export_authorization,
    hash_headers,
    hash_signature,
    oauth_form,
)
from autokey.adapters.g2a.webhook_signing import sign_webhook


def test_export_authorization_matches_the_published_vector() -> None:
    header = export_authorization(
        "games-games-games", "test123@integration-api.g2a", "quite-nice-secret"
    )
    assert header == (
        "games-games-games, 5feaefae655d6d2dcfb27f22e700495aa90e255fc0ad93bc22dfc0ed770fae21"
    )


def test_export_api_key_reproduces_the_sandbox_pair() -> None:
    key = export_api_key(
        "qdaiciDiyMaTjxMt",
        "sandboxapitest@g2a.com",
        "b0d293f6-e1d2-4629-8264-fd63b5af3207b0d293f6-e1d2-4629-8264-fd63b5af3207",
    )
    assert key == "74026b3dc2c6db6a30a73e71cdb138b1e1b5eb7a97ced46689e2d28db1050875"
    assert (
        export_api_key(SANDBOX_CLIENT_ID, SANDBOX_EMAIL, SANDBOX_CLIENT_SECRET) == SANDBOX_API_KEY
    )


def test_seed_hash_matches_the_vector() -> None:
    assert hash_signature("secretHASH", "clientKEY", "1700000000") == (
        "ad06ceaf0f0c1edbe236d066ca5f7771ace0758dbfeb02eb8c8a2f71a51f4442"
    )


def test_seed_hash_headers_carry_key_timestamp_and_hash() -> None:
    headers = hash_headers("secretHASH", "clientKEY", "1700000000")
    assert headers == {
        "X-API-HASH": "secretHASH",
        "X-API-KEY": "clientKEY",
        "X-G2A-Timestamp": "1700000000",
        "X-G2A-Hash": "ad06ceaf0f0c1edbe236d066ca5f7771ace0758dbfeb02eb8c8a2f71a51f4442",
    }


def test_oauth_form_is_client_credentials() -> None:
    assert oauth_form("id", "s") == {
        "grant_type": "client_credentials",
        "client_id": "id",
        "client_secret": "s",
    }


def test_webhook_signature_matches_the_vector() -> None:
    body = b'{"event_id":"evt_1","type":"order.paid","order_id":"80201019921771"}'
    signature = sign_webhook(b"test-api-hash-secret", body, "1700000000", "n-0001")
    assert signature == "174bfb00481f017a0d6214e26be4e5a8f3751c07f2e358b383ad6f07d6896b69"


def test_rotating_any_credential_changes_the_fingerprint_without_revealing_it() -> None:
    base = credentials_fingerprint("sandbox", "oauth2", "https://x", "id", "secret-1")
    assert base == credentials_fingerprint("sandbox", "oauth2", "https://x", "id", "secret-1")
    assert base != credentials_fingerprint("sandbox", "oauth2", "https://x", "id", "secret-2")
    assert base != credentials_fingerprint("sandbox", "oauth2", "https://x", "id2", "secret-1")
    assert "secret-1" not in base
