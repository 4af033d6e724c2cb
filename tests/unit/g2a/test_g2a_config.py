from __future__ import annotations

import pytest

from autokey.adapters.g2a.config import (
    G2AConfig,
    InvalidG2AConfig,
    TokenFlow,
    g2a_config_from_env,
)
from autokey.adapters.g2a.urls import G2AConfigError
from autokey.domain.model.marketplace import MarketplaceEnvironment

GOOD = {
    "G2A_API_URL": "https://sandboxapi.g2a.com",
    "G2A_API_KEY": "client-id-123",
    "G2A_API_HASH": "very-secret-hash-value",
    "G2A_EMAIL": "seller@example.com",
}


def test_no_g2a_variables_means_not_configured() -> None:
    assert g2a_config_from_env({"PATH": "/bin", "G2A_API_URL": ""}, production=True) is None


def test_sandbox_defaults() -> None:
    config = g2a_config_from_env(GOOD, production=False)
    assert isinstance(config, G2AConfig)
    assert config.env is MarketplaceEnvironment.SANDBOX
    assert config.export_base_url == "https://sandboxapi.g2a.com/v1"
    assert config.import_base_url == "https://sandboxapi.g2a.com"
    assert config.hash_token_base_url == "https://sandboxapi.g2a.com/v1"
    assert config.token_flow is TokenFlow.OAUTH2
    assert config.timeout_s == 8.0
    assert config.retry_max == 3
    assert config.paths.offers == "/v3/sales/offers"


def test_production_defaults_to_live() -> None:
    env = {**GOOD, "G2A_API_URL": "https://api.g2a.com/v1"}
    config = g2a_config_from_env(env, production=True)
    assert config is not None
    assert config.env is MarketplaceEnvironment.LIVE
    assert config.hash_token_base_url == "https://api.g2a.com/integration-api/v1"


def test_production_with_the_sandbox_host_and_no_env_is_refused() -> None:
    with pytest.raises(InvalidG2AConfig) as info:
        g2a_config_from_env(GOOD, production=True)
    assert [(p.variable, p.reason) for p in info.value.problems] == [
        ("G2A_API_URL", "sandbox_host_with_live_env")
    ]


def test_older_secret_name_is_accepted() -> None:
    env = {k: v for k, v in GOOD.items() if k != "G2A_API_HASH"} | {"G2A_API_SECRET": "s3cr3t"}
    config = g2a_config_from_env(env, production=False)
    assert config is not None
    assert config.client_secret == "s3cr3t"


def test_explicit_settings_are_read() -> None:
    env = GOOD | {
        "G2A_ENV": "LIVE",
        "G2A_API_URL": "https://api.g2a.com",
        "G2A_TIMEOUT_MS": "5000",
        "G2A_RETRY_MAX": "0",
        "G2A_TOKEN_FLOW": "hash",
        "G2A_IMPORT_API_URL": "https://api.g2a.com/integration-api/v1/",
    }
    config = g2a_config_from_env(env, production=False)
    assert config is not None
    assert (config.env, config.timeout_s, config.retry_max, config.token_flow) == (
        MarketplaceEnvironment.LIVE,
        5.0,
        0,
        TokenFlow.HASH,
    )
    assert config.import_base_url == "https://api.g2a.com"


def test_every_problem_is_listed_at_once_and_no_value_is_printed() -> None:
    env = {
        "G2A_API_URL": "http://evil.example.com/v1?token=leak-me-url",
        "G2A_API_KEY": "bad id, with-comma",
        "G2A_API_HASH": "leak-me-hash",
        "G2A_API_SECRET": "leak-me-other",
        "G2A_EMAIL": "leak-me-not-an-email",
        "G2A_ENV": "staging",
        "G2A_TIMEOUT_MS": "99999",
        "G2A_RETRY_MAX": "many",
        "G2A_TOKEN_FLOW": "password",
        "G2A_IMPORT_API_URL": "https://x@relay.example.com",
    }
    with pytest.raises(InvalidG2AConfig) as info:
        g2a_config_from_env(env, production=False)
    found = {(p.variable, p.reason) for p in info.value.problems}
    assert found == {
        ("G2A_ENV", "not_sandbox_or_live"),
        ("G2A_TOKEN_FLOW", "not_oauth2_or_hash"),
        ("G2A_API_KEY", "malformed"),
        ("G2A_API_SECRET", "differs_from_G2A_API_HASH"),
        ("G2A_EMAIL", "not_an_email"),
        ("G2A_TIMEOUT_MS", "out_of_range_1000_10000"),
        ("G2A_RETRY_MAX", "not_an_integer"),
        ("G2A_API_URL", "query_or_fragment"),
        ("G2A_IMPORT_API_URL", "credentials_in_url"),
    }
    message = str(info.value)
    assert "leak-me" not in message
    assert "with-comma" not in message
    assert isinstance(info.value, G2AConfigError)
    assert isinstance(info.value, ValueError)


def test_missing_credentials_are_named() -> None:
    with pytest.raises(InvalidG2AConfig) as info:
        g2a_config_from_env({"G2A_ENV": "sandbox", "G2A_EMAIL": "a@b.c"}, production=False)
    assert {p.variable for p in info.value.problems} == {
        "G2A_API_URL",
        "G2A_API_KEY",
        "G2A_API_HASH",
    }


def test_a_webhook_secret_alone_does_not_configure_the_client() -> None:
    only_webhooks = {"G2A_API_HASH": "secret", "G2A_API_HASH_PREVIOUS": "old", "G2A_ENV": "live"}
    assert g2a_config_from_env(only_webhooks, production=True) is None


def test_config_repr_hides_secret_and_email() -> None:
    config = g2a_config_from_env(GOOD, production=False)
    assert "very-secret-hash-value" not in repr(config)
    assert "seller@example.com" not in repr(config)
