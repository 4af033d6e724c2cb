"""G2A base URL normalisation (seed FR-003 / SC-001), as a pure function."""

from __future__ import annotations

import enum
import ipaddress
from urllib.parse import urlsplit

from autokey.domain.model.marketplace import MarketplaceEnvironment

LIVE_HOST = "api.g2a.com"
SANDBOX_HOST = "sandboxapi.g2a.com"
LIVE_IMPORT_PATH = "/integration-api/v1"
DEFAULT_PATH = "/v1"


class ApiKind(enum.StrEnum):
    EXPORT = "export"
    IMPORT = "import"


class G2AConfigError(ValueError):
    """A G2A setting is unusable. `reason` is a stable snake_case word; never a secret."""

    def __init__(self, reason: str, *, variable: str | None = None) -> None:
        self.reason = reason
        self.variable = variable
        super().__init__(f"{variable}: {reason}" if variable else reason)


def expected_path(api: ApiKind, env: MarketplaceEnvironment) -> str:
    """`/integration-api/v1` for the live Import API, `/v1` otherwise."""
    if api is ApiKind.IMPORT and env is MarketplaceEnvironment.LIVE:
        return LIVE_IMPORT_PATH
    return DEFAULT_PATH


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_base_url(url: str, api: ApiKind, env: MarketplaceEnvironment) -> str:
    """The canonical base URL of `api` in `env`: `scheme://host[:port]/path` with the right
    path appended when missing and trailing slashes stripped. Raises `G2AConfigError` naming
    the reason for anything else. Idempotent: normalising a result returns it unchanged."""
    if not url or url != url.strip() or any(c.isspace() or ord(c) < 32 for c in url):
        raise G2AConfigError("malformed_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise G2AConfigError("malformed_url") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise G2AConfigError("not_an_http_url")
    if "@" in parts.netloc:
        raise G2AConfigError("credentials_in_url")
    if "?" in url or "#" in url:
        raise G2AConfigError("query_or_fragment")
    host = parts.hostname
    if not host:
        raise G2AConfigError("missing_host")
    if any(c in host for c in "/\\%[]") or host.endswith("."):
        raise G2AConfigError("malformed_url")
    if scheme == "http" and not is_loopback_host(host):
        raise G2AConfigError("https_required")
    if host == SANDBOX_HOST and env is MarketplaceEnvironment.LIVE:
        raise G2AConfigError("sandbox_host_with_live_env")
    if host == LIVE_HOST and env is MarketplaceEnvironment.SANDBOX:
        raise G2AConfigError("live_host_with_sandbox_env")
    path = parts.path.rstrip("/")
    wanted = expected_path(api, env)
    if path in ("", wanted):
        path = wanted
    elif path in (LIVE_IMPORT_PATH, DEFAULT_PATH):
        raise G2AConfigError("path_does_not_match_api")
    else:
        raise G2AConfigError("unexpected_path")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{path}"


def host_root(normalized_url: str) -> str:
    """`scheme://host[:port]` of an already normalised URL (where the Import API's `/v3`
    resources and `/oauth/token` live)."""
    parts = urlsplit(normalized_url)
    return f"{parts.scheme}://{parts.netloc}"
