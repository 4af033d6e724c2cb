from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autokey.adapters.g2a.urls import (
    ApiKind,
    G2AConfigError,
    host_root,
    normalize_base_url,
)
from autokey.domain.model.marketplace import MarketplaceEnvironment

EXPORT, IMPORT = ApiKind.EXPORT, ApiKind.IMPORT
SANDBOX, LIVE = MarketplaceEnvironment.SANDBOX, MarketplaceEnvironment.LIVE

REASONS = {
    "malformed_url",
    "not_an_http_url",
    "credentials_in_url",
    "query_or_fragment",
    "missing_host",
    "https_required",
    "sandbox_host_with_live_env",
    "live_host_with_sandbox_env",
    "path_does_not_match_api",
    "unexpected_path",
}


@pytest.mark.parametrize(
    ("url", "api", "env", "expected"),
    [
        ("https://api.g2a.com", EXPORT, LIVE, "https://api.g2a.com/v1"),
        ("https://api.g2a.com/", EXPORT, LIVE, "https://api.g2a.com/v1"),
        ("https://api.g2a.com/v1///", EXPORT, LIVE, "https://api.g2a.com/v1"),
        ("https://api.g2a.com", IMPORT, LIVE, "https://api.g2a.com/integration-api/v1"),
        (
            "https://api.g2a.com/integration-api/v1/",
            IMPORT,
            LIVE,
            "https://api.g2a.com/integration-api/v1",
        ),
        ("https://sandboxapi.g2a.com", EXPORT, SANDBOX, "https://sandboxapi.g2a.com/v1"),
        ("https://sandboxapi.g2a.com", IMPORT, SANDBOX, "https://sandboxapi.g2a.com/v1"),
        ("https://SandboxAPI.G2A.com/v1", IMPORT, SANDBOX, "https://sandboxapi.g2a.com/v1"),
        ("http://127.0.0.1:8099", EXPORT, SANDBOX, "http://127.0.0.1:8099/v1"),
        ("http://localhost:8099/v1", IMPORT, SANDBOX, "http://localhost:8099/v1"),
        ("http://[::1]:8099", IMPORT, LIVE, "http://[::1]:8099/integration-api/v1"),
        (
            "https://g2a-relay.example.com:8443",
            EXPORT,
            LIVE,
            "https://g2a-relay.example.com:8443/v1",
        ),
    ],
)
def test_accepted_urls_get_the_right_path(
    url: str, api: ApiKind, env: MarketplaceEnvironment, expected: str
) -> None:
    assert normalize_base_url(url, api, env) == expected


@pytest.mark.parametrize(
    ("url", "api", "env", "reason"),
    [
        ("http://api.g2a.com", EXPORT, LIVE, "https_required"),
        ("ftp://api.g2a.com", EXPORT, LIVE, "not_an_http_url"),
        ("api.g2a.com/v1", EXPORT, LIVE, "not_an_http_url"),
        ("https://user:pw@api.g2a.com", EXPORT, LIVE, "credentials_in_url"),
        ("https://api.g2a.com/v1?x=1", EXPORT, LIVE, "query_or_fragment"),
        ("https://api.g2a.com/v1#top", EXPORT, LIVE, "query_or_fragment"),
        ("https://api.g2a.com/v1?", EXPORT, LIVE, "query_or_fragment"),
        ("https://sandboxapi.g2a.com", EXPORT, LIVE, "sandbox_host_with_live_env"),
        ("https://api.g2a.com", EXPORT, SANDBOX, "live_host_with_sandbox_env"),
        ("https://api.g2a.com/v2", EXPORT, LIVE, "unexpected_path"),
        ("https://api.g2a.com/v1/products", EXPORT, LIVE, "unexpected_path"),
        ("https://api.g2a.com/v1", IMPORT, LIVE, "path_does_not_match_api"),
        ("https://api.g2a.com/integration-api/v1", EXPORT, LIVE, "path_does_not_match_api"),
        ("https://:443/v1", EXPORT, LIVE, "missing_host"),
        ("https://api.g2a.com:notaport", EXPORT, LIVE, "malformed_url"),
        (" https://api.g2a.com", EXPORT, LIVE, "malformed_url"),
        ("", EXPORT, LIVE, "malformed_url"),
    ],
)
def test_rejected_urls_name_the_reason(
    url: str, api: ApiKind, env: MarketplaceEnvironment, reason: str
) -> None:
    with pytest.raises(G2AConfigError) as info:
        normalize_base_url(url, api, env)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


def test_host_root_drops_the_path() -> None:
    assert host_root("https://api.g2a.com/integration-api/v1") == "https://api.g2a.com"
    assert host_root("http://127.0.0.1:8099/v1") == "http://127.0.0.1:8099"


hosts = st.sampled_from(
    ["api.g2a.com", "sandboxapi.g2a.com", "127.0.0.1", "localhost", "[::1]", "relay.example.com"]
)
url_like = st.builds(
    lambda scheme, userinfo, host, port, path, slashes, tail: (
        f"{scheme}://{userinfo}{host}{port}{path}{'/' * slashes}{tail}"
    ),
    st.sampled_from(["https", "http", "HTTPS", "ftp"]),
    st.sampled_from(["", "", "", "u:p@"]),
    hosts,
    st.sampled_from(["", ":8099", ":443", ":x"]),
    st.sampled_from(["", "/v1", "/integration-api/v1", "/v2", "/v1/token", "//v1"]),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["", "", "?a=b", "#f"]),
)


@given(
    url=st.one_of(url_like, st.text(max_size=40)),
    api=st.sampled_from(list(ApiKind)),
    env=st.sampled_from(list(MarketplaceEnvironment)),
)
def test_every_accepted_url_normalises_idempotently_and_every_rejection_names_a_reason(
    url: str, api: ApiKind, env: MarketplaceEnvironment
) -> None:
    outcome: str | G2AConfigError
    try:
        outcome = normalize_base_url(url, api, env)
    except G2AConfigError as exc:
        outcome = exc
    if isinstance(outcome, G2AConfigError):
        assert outcome.reason in REASONS
        return
    normalized = outcome
    assert normalize_base_url(normalized, api, env) == normalized
    assert not normalized.endswith("/")
    assert normalized.endswith("/integration-api/v1" if (api, env) == (IMPORT, LIVE) else "/v1")
    assert normalized.startswith(("https://", "http://"))
