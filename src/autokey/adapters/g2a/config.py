"""G2A settings: one frozen value, parsed from the environment by a pure function."""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from autokey.adapters.g2a.urls import ApiKind, G2AConfigError, host_root, normalize_base_url
from autokey.domain.model.marketplace import MarketplaceEnvironment

DEFAULT_TIMEOUT_MS = 8000
MIN_TIMEOUT_MS = 1000
MAX_TIMEOUT_MS = 10000
DEFAULT_RETRY_MAX = 3
MAX_RETRY_MAX = 10


class TokenFlow(enum.StrEnum):
    OAUTH2 = "oauth2"
    """G2A's documented flow: POST {host root}/oauth/token, client_credentials form."""
    HASH = "hash"
    """The seed's FR-001a flow: GET {normalised import base}/token with the hash headers."""


@attrs.frozen(kw_only=True)
class G2APaths:
    """Resource paths, in one table so the seed's `/integration-api/v1` layout can be
    configured instead of G2A's `/v3` one. Export paths are relative to the Export base URL,
    Import paths to the Import host root."""

    products: str = "/products"
    order: str = "/order"
    order_pay: str = "/order/pay/{order_id}"
    order_details: str = "/order/details/{order_id}"
    order_key: str = "/order/key/{order_id}"
    oauth_token: str = "/oauth/token"  # noqa: S105 - a path, not a secret
    hash_token: str = "/token"  # noqa: S105 - a path, not a secret
    """Relative to the normalised Import base (`/v1` or `/integration-api/v1`)."""
    offers: str = "/v3/sales/offers"
    offer: str = "/v3/sales/offers/{offer_id}"
    job: str = "/v3/jobs/{job_id}"


@attrs.frozen(kw_only=True)
class G2AConfig:
    env: MarketplaceEnvironment
    export_base_url: str
    """Normalised, e.g. `https://sandboxapi.g2a.com/v1`."""
    import_base_url: str
    """Host root, e.g. `https://sandboxapi.g2a.com`."""
    token_flow: TokenFlow = TokenFlow.OAUTH2
    client_id: str
    """G2A_API_KEY."""
    client_secret: str = attrs.field(repr=False)
    """G2A_API_HASH."""
    email: str = attrs.field(repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_MS / 1000
    retry_max: int = DEFAULT_RETRY_MAX
    paths: G2APaths = G2APaths()

    @property
    def hash_token_base_url(self) -> str:
        """The FR-003-normalised Import base the `hash` token flow calls `/token` under."""
        return normalize_base_url(self.import_base_url, ApiKind.IMPORT, self.env)


CLIENT_VARIABLES = ("G2A_API_URL", "G2A_API_KEY", "G2A_EMAIL")


@attrs.frozen(kw_only=True)
class ConfigProblem:
    variable: str
    reason: str


class InvalidG2AConfig(G2AConfigError):
    """Every problem found in the G2A settings; names variables, never values."""

    def __init__(self, problems: tuple[ConfigProblem, ...]) -> None:
        self.problems = problems
        super().__init__("invalid_g2a_settings")
        self.args = ("; ".join(f"{p.variable}: {p.reason}" for p in problems),)


def _int_in_range(
    environ: Mapping[str, str],
    name: str,
    default: int,
    low: int,
    high: int,
    problems: list[ConfigProblem],
) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(ConfigProblem(variable=name, reason="not_an_integer"))
        return default
    if not low <= value <= high:
        problems.append(ConfigProblem(variable=name, reason=f"out_of_range_{low}_{high}"))
        return default
    return value


def _credential(
    environ: Mapping[str, str], name: str, problems: list[ConfigProblem], *, forbid: str = ""
) -> str:
    value = environ.get(name, "")
    if not value.strip():
        problems.append(ConfigProblem(variable=name, reason="missing"))
    elif value != value.strip() or any(c.isspace() or c in forbid for c in value):
        problems.append(ConfigProblem(variable=name, reason="malformed"))
    return value


def g2a_config_from_env(environ: Mapping[str, str], *, production: bool) -> G2AConfig | None:
    """The G2A client settings, or None when none of G2A_API_URL, G2A_API_KEY, G2A_EMAIL is
    set (the client is not configured; G2A_API_HASH alone only signs webhooks).
    Raises `InvalidG2AConfig` listing every problem at once; messages never hold values."""
    if not any(environ.get(k, "").strip() for k in CLIENT_VARIABLES):
        return None
    problems: list[ConfigProblem] = []

    env_raw = environ.get("G2A_ENV", "").strip().lower()
    default_env = MarketplaceEnvironment.LIVE if production else MarketplaceEnvironment.SANDBOX
    try:
        env = MarketplaceEnvironment(env_raw) if env_raw else default_env
    except ValueError:
        problems.append(ConfigProblem(variable="G2A_ENV", reason="not_sandbox_or_live"))
        env = default_env

    flow_raw = environ.get("G2A_TOKEN_FLOW", "").strip().lower()
    try:
        flow = TokenFlow(flow_raw) if flow_raw else TokenFlow.OAUTH2
    except ValueError:
        problems.append(ConfigProblem(variable="G2A_TOKEN_FLOW", reason="not_oauth2_or_hash"))
        flow = TokenFlow.OAUTH2

    client_id = _credential(environ, "G2A_API_KEY", problems, forbid=",")
    secret_name = "G2A_API_HASH" if environ.get("G2A_API_HASH", "") else "G2A_API_SECRET"
    both = environ.get("G2A_API_HASH") and environ.get("G2A_API_SECRET")
    if both and environ["G2A_API_HASH"] != environ["G2A_API_SECRET"]:
        problems.append(
            ConfigProblem(variable="G2A_API_SECRET", reason="differs_from_G2A_API_HASH")
        )
    if not environ.get("G2A_API_HASH") and not environ.get("G2A_API_SECRET"):
        problems.append(ConfigProblem(variable="G2A_API_HASH", reason="missing"))
        client_secret = ""
    else:
        client_secret = _credential(environ, secret_name, problems)
    email = _credential(environ, "G2A_EMAIL", problems)
    if email.strip() and (email.count("@") != 1 or email.startswith("@") or email.endswith("@")):
        problems.append(ConfigProblem(variable="G2A_EMAIL", reason="not_an_email"))

    timeout_ms = _int_in_range(
        environ, "G2A_TIMEOUT_MS", DEFAULT_TIMEOUT_MS, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS, problems
    )
    retry_max = _int_in_range(
        environ, "G2A_RETRY_MAX", DEFAULT_RETRY_MAX, 0, MAX_RETRY_MAX, problems
    )

    export_base = ""
    api_url = environ.get("G2A_API_URL", "").strip()
    if not api_url:
        problems.append(ConfigProblem(variable="G2A_API_URL", reason="missing"))
    else:
        try:
            export_base = normalize_base_url(api_url, ApiKind.EXPORT, env)
        except G2AConfigError as exc:
            problems.append(ConfigProblem(variable="G2A_API_URL", reason=exc.reason))
    import_root = ""
    import_url = environ.get("G2A_IMPORT_API_URL", "").strip()
    if import_url:
        try:
            import_root = host_root(normalize_base_url(import_url, ApiKind.IMPORT, env))
        except G2AConfigError as exc:
            problems.append(ConfigProblem(variable="G2A_IMPORT_API_URL", reason=exc.reason))
    elif export_base:
        import_root = host_root(export_base)

    if problems:
        raise InvalidG2AConfig(tuple(problems))
    return G2AConfig(
        env=env,
        export_base_url=export_base,
        import_base_url=import_root,
        token_flow=flow,
        client_id=client_id,
        client_secret=client_secret,
        email=email,
        timeout_s=timeout_ms / 1000,
        retry_max=retry_max,
    )
