"""The one typed, immutable configuration, loaded once from the environment.

`load_settings(environ)` is pure: it reads nothing else and raises `SettingsError` listing
every problem at once. No value of a secret variable ever appears in a message.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import limits

from autokey.adapters.crypto import parse_master_key
from autokey.adapters.g2a.config import G2AConfig, InvalidG2AConfig, g2a_config_from_env
from autokey.domain.services.batching import LANES

DEFAULT_SQLITE_PATH = "./autokey.db"
DEV_KEY_FILE = "./autokey.key"
"""The development master key with PostgreSQL (with SQLite it sits beside the database)."""
DEFAULT_METRICS_ADDR = "127.0.0.1:9464"
DEFAULT_UPLOAD_MAX_BYTES = 128 * 1024 * 1024
DEFAULT_UPLOAD_MAX_LINES = 2_000_000


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class StoreKind(enum.StrEnum):
    MEMORY = "memory"
    SQLITE = "sqlite"
    POSTGRES = "postgres"


class LogFormat(enum.StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class Payments(enum.StrEnum):
    SIMULATED = "simulated"
    NONE = "none"


class SettingsError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = tuple(problems)


@attrs.frozen(kw_only=True)
class DatabaseSettings:
    kind: StoreKind
    url: str = attrs.field(repr=False)
    """For PostgreSQL the DSN (may hold a password); for SQLite the file path."""
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout_s: int = 5
    """PostgreSQL: bound on opening one connection (libpq connect_timeout)."""
    statement_timeout_ms: int = 5000
    """PostgreSQL: server-side statement_timeout; the client also abandons a statement (and
    its connection) that has not answered 1 s after it, e.g. during a network black-hole."""
    pool_timeout_s: int = 5
    """PostgreSQL: bound on waiting for a free pooled connection."""
    tcp_user_timeout_ms: int = 10000
    """PostgreSQL: the kernel drops the connection when sent data stays unacknowledged this
    long (libpq tcp_user_timeout); TCP keepalives probe idle connections the same way."""

    @property
    def sqlite_path(self) -> Path:
        return Path(self.url)

    def describe(self) -> str:
        """Which database this is, for people: never a password."""
        if self.kind is StoreKind.SQLITE:
            return f"sqlite {self.sqlite_path.resolve()}"
        if self.kind is StoreKind.MEMORY:
            return "memory:// (nothing persists)"
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        return f"postgresql://{user}{host}{port}{parts.path or '/'}"


@attrs.frozen(kw_only=True)
class HttpSettings:
    keepalive_timeout_s: float = 15.0
    """A connection is closed when no complete request has arrived this long after it
    opened or after its last response: idle keep-alive and slow-header clients alike
    (aiohttp's keep-alive timer starts at accept and is not reset by partial headers)."""


@attrs.frozen(kw_only=True)
class RateLimits:
    """Per-principal allowances in `limits` notation ("10/minute"); None: unlimited."""

    uploads: str | None = "60/minute"
    orders: str | None = "600/minute"
    writes: str | None = "1200/minute"
    """Every token-authenticated POST, PATCH or DELETE."""
    auth_failures: str | None = "30/minute"
    """Failed authentications per client address."""


@attrs.frozen(kw_only=True)
class CryptoSettings:
    master_keys: tuple[bytes, ...] = attrs.field(repr=False)
    """Current key first, then previous ones still accepted for decryption. Empty: use key_file."""
    key_file: Path | None = None


@attrs.frozen(kw_only=True)
class UploadLimits:
    """Caps on one text/plain key upload, counted after any Content-Encoding is undone."""

    max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES
    max_lines: int = DEFAULT_UPLOAD_MAX_LINES
    """Every line counts, blank ones included."""


@attrs.frozen(kw_only=True)
class Settings:
    env: Environment
    host: str
    port: int
    database: DatabaseSettings
    crypto: CryptoSettings
    log_level: str
    log_format: LogFormat
    reservation_ttl_s: int
    sweep_interval_s: float
    payments: Payments
    metrics_addr: tuple[str, int] | None
    """(host, port) of the /metrics listener; None when AUTOKEY_METRICS_ADDR is set empty."""
    workers: int
    """`serve` processes; 0: one per CPU on PostgreSQL, one otherwise. `serve` replaces it
    with the count it settled on before any worker starts (see `batch_lanes`)."""
    group_commit: bool = True
    """Concurrent order creates, payments and fulfillments share transactions (ADR 0032)."""

    @property
    def batch_lanes(self) -> int:
        """Group-commit batches of a kind in flight per process (ADR 0032): two for a lone
        worker, whose second lane works while the first waits for the database; one for each
        of several workers, which already overlap one another's batches (there a second lane
        only halved every batch: about a sixth fewer G2A merchant flows at two workers, in
        docs/benchmarks.md)."""
        return 1 if self.workers > 1 else LANES

    uploads: UploadLimits = UploadLimits()
    redis_url: str | None = attrs.field(repr=False)
    http: HttpSettings = HttpSettings()
    rate_limits: RateLimits = RateLimits()
    idempotency_lease_s: int = 10
    """How long an in-flight Idempotency-Key is held before a retry may take it over."""
    g2a: G2AConfig | None = None
    """None when no G2A_* variable is set."""
    webhook_allow_private: bool = False
    """Seller webhooks may target loopback, private and link-local addresses (tests, labs)."""
    webhook_timeout_s: float = 10.0

    @property
    def webhook_lease(self) -> timedelta:
        """A dispatcher owns a delivery for two send timeouts and a margin."""
        return timedelta(seconds=2 * self.webhook_timeout_s + 5)

    webhook_secrets: tuple[bytes, ...] = attrs.field(default=(), repr=False)
    g2a_reservation_ttl_s: int = 1800
    """How long a reservation G2A makes through the merchant API holds its keys."""
    g2a_stock_sync_interval_s: float = 30.0
    """The least time between two pushes of one offer's stock to G2A (Import API)."""
    g2a_rate_limit: str = "10/second"
    """Client-side limit on calls to G2A, a `limits` rate string."""
    """G2A_API_HASH (or G2A_API_SECRET), then G2A_API_HASH_PREVIOUS during a rotation."""

    @property
    def production(self) -> bool:
        return self.env is Environment.PRODUCTION


class _Reader:
    """Collects problems instead of stopping at the first one."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str, default: str = "") -> str:
        return self.environ.get(name, default).strip() or default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name} must be an integer, got {raw!r}")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name} must be between {low} and {high}, got {value}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self.text(name, "1" if default else "0").lower()
        if raw not in ("0", "1", "true", "false"):
            self.problems.append(f"{name} must be 0 or 1, got {raw!r}")
        return raw in ("1", "true")

    def choice(self, name: str, enum_type: type[enum.StrEnum], default: str) -> str:
        raw = self.text(name, default).lower()
        allowed = [m.value for m in enum_type]
        if raw not in allowed:
            self.problems.append(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
            return default
        return raw


def _database(r: _Reader) -> DatabaseSettings:
    url = r.text("AUTOKEY_DATABASE_URL")
    pool_max = r.integer("AUTOKEY_DB_POOL_SIZE", 10, 1, 200)
    bounds: dict[str, Any] = {
        "connect_timeout_s": r.integer("AUTOKEY_DB_CONNECT_TIMEOUT_S", 5, 2, 300),
        "statement_timeout_ms": r.integer("AUTOKEY_DB_STATEMENT_TIMEOUT_MS", 5000, 100, 3_600_000),
        "pool_timeout_s": r.integer("AUTOKEY_DB_POOL_TIMEOUT_S", 5, 1, 300),
        "tcp_user_timeout_ms": r.integer("AUTOKEY_DB_TCP_USER_TIMEOUT_MS", 10000, 1000, 600_000),
    }
    if not url:
        return DatabaseSettings(kind=StoreKind.SQLITE, url=DEFAULT_SQLITE_PATH)
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        return DatabaseSettings(kind=StoreKind.POSTGRES, url=url, pool_max=pool_max, **bounds)
    if scheme == "sqlite":
        path = (
            url.removeprefix("sqlite://").removeprefix("/") if url.startswith("sqlite:///") else ""
        )
        if not path:
            r.problems.append("AUTOKEY_DATABASE_URL sqlite URLs look like sqlite:///path/to.db")
        return DatabaseSettings(kind=StoreKind.SQLITE, url=path or DEFAULT_SQLITE_PATH)
    if url == "memory://":
        return DatabaseSettings(kind=StoreKind.MEMORY, url="memory://")
    r.problems.append(
        "AUTOKEY_DATABASE_URL must start with postgresql://, sqlite:/// or be memory://"
    )
    return DatabaseSettings(kind=StoreKind.SQLITE, url=DEFAULT_SQLITE_PATH)


def _crypto(r: _Reader, production: bool, database: DatabaseSettings) -> CryptoSettings:
    keys: list[bytes] = []
    for name in ("ENCRYPTION_KEY", "ENCRYPTION_KEY_PREVIOUS"):
        for part in filter(None, (p.strip() for p in r.text(name).split(","))):
            try:
                keys.append(parse_master_key(part))
            except ValueError as exc:
                r.problems.append(f"{name} {exc}")
    if keys:
        if not r.text("ENCRYPTION_KEY"):
            r.problems.append("ENCRYPTION_KEY_PREVIOUS is set but ENCRYPTION_KEY is not")
        return CryptoSettings(master_keys=tuple(keys))
    if production:
        r.problems.append("ENCRYPTION_KEY is required in production (64 hex characters)")
    elif database.kind is StoreKind.SQLITE:
        return CryptoSettings(master_keys=(), key_file=database.sqlite_path.with_suffix(".key"))
    elif database.kind is StoreKind.POSTGRES:
        return CryptoSettings(master_keys=(), key_file=Path(DEV_KEY_FILE))
    return CryptoSettings(master_keys=())


def _http(r: _Reader) -> HttpSettings:
    return HttpSettings(
        keepalive_timeout_s=float(r.integer("AUTOKEY_HTTP_KEEPALIVE_TIMEOUT_S", 15, 1, 3600)),
    )


def _rate_limits(r: _Reader) -> RateLimits:
    def one(name: str, default: str | None) -> str | None:
        raw = r.text(name).lower()
        if not raw:
            return default
        if raw == "off":
            return None
        try:
            valid = limits.parse(raw).amount >= 1
        except ValueError:
            valid = False
        if not valid:
            r.problems.append(f"{name} must look like 10/minute (or be off), got {raw!r}")
            return default
        return raw

    default = RateLimits()
    return RateLimits(
        uploads=one("AUTOKEY_RATE_LIMIT_UPLOADS", default.uploads),
        orders=one("AUTOKEY_RATE_LIMIT_ORDERS", default.orders),
        writes=one("AUTOKEY_RATE_LIMIT_WRITES", default.writes),
        auth_failures=one("AUTOKEY_RATE_LIMIT_AUTH_FAILURES", default.auth_failures),
    )


def _g2a(r: _Reader, production: bool) -> G2AConfig | None:
    try:
        return g2a_config_from_env(r.environ, production=production)
    except InvalidG2AConfig as exc:
        r.problems.extend(f"{p.variable}: {p.reason}" for p in exc.problems)
        return None


def _metrics_addr(r: _Reader) -> tuple[str, int] | None:
    raw = r.environ.get("AUTOKEY_METRICS_ADDR", DEFAULT_METRICS_ADDR).strip()
    if not raw:
        return None
    host, _, port = raw.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if host and port.isascii() and port.isdigit() and 0 < int(port) <= 65535:
        return host, int(port)
    r.problems.append(f"AUTOKEY_METRICS_ADDR must be host:port (or empty to disable), got {raw!r}")
    return None


def _webhook_secrets(r: _Reader) -> tuple[bytes, ...]:
    current = r.text("G2A_API_HASH") or r.text("G2A_API_SECRET")
    previous = r.text("G2A_API_HASH_PREVIOUS")
    if previous and not current:
        r.problems.append("G2A_API_HASH_PREVIOUS is set but G2A_API_HASH is not")
    return tuple(s.encode() for s in (current, previous) if s)


_RATE = re.compile(r"[1-9][0-9]{0,5}/(second|minute|hour)")


def _rate(r: _Reader) -> str:
    rate = r.text("AUTOKEY_G2A_RATE_LIMIT", "10/second")
    if not _RATE.fullmatch(rate):
        r.problems.append("AUTOKEY_G2A_RATE_LIMIT must look like 10/second (second|minute|hour)")
    return rate


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from `environ`; raise SettingsError listing every problem."""
    r = _Reader(environ)
    env = Environment(r.choice("AUTOKEY_ENV", Environment, Environment.DEVELOPMENT))
    production = env is Environment.PRODUCTION or r.text("G2A_ENV").lower() == "live"
    database = _database(r)
    crypto = _crypto(r, production, database)
    payments_default = Payments.NONE if production else Payments.SIMULATED
    settings = Settings(
        env=Environment.PRODUCTION if production else env,
        host=r.text("AUTOKEY_HOST", "127.0.0.1"),
        port=r.integer("AUTOKEY_PORT", 8080, 0, 65535),
        database=database,
        crypto=crypto,
        log_level=r.choice("AUTOKEY_LOG_LEVEL", _LogLevel, "info"),
        log_format=LogFormat(r.choice("AUTOKEY_LOG_FORMAT", LogFormat, LogFormat.AUTO)),
        reservation_ttl_s=r.integer("AUTOKEY_RESERVATION_TTL_S", 900, 10, 7 * 24 * 3600),
        sweep_interval_s=float(r.integer("AUTOKEY_SWEEP_INTERVAL_S", 15, 1, 3600)),
        payments=Payments(r.choice("AUTOKEY_PAYMENTS", Payments, payments_default)),
        metrics_addr=_metrics_addr(r),
        workers=r.integer("AUTOKEY_WORKERS", 0, 0, 256),
        group_commit=r.flag("AUTOKEY_GROUP_COMMIT", default=True),
        uploads=UploadLimits(
            max_bytes=r.integer("AUTOKEY_UPLOAD_MAX_BYTES", DEFAULT_UPLOAD_MAX_BYTES, 1, 1 << 40),
            max_lines=r.integer(
                "AUTOKEY_UPLOAD_MAX_LINES", DEFAULT_UPLOAD_MAX_LINES, 1, (1 << 32) - 1
            ),
        ),
        redis_url=r.text("AUTOKEY_REDIS_URL") or None,
        http=_http(r),
        rate_limits=_rate_limits(r),
        idempotency_lease_s=r.integer("AUTOKEY_IDEMPOTENCY_LEASE_S", 10, 1, 600),
        g2a=_g2a(r, production),
        webhook_secrets=_webhook_secrets(r),
        webhook_allow_private=r.flag("AUTOKEY_WEBHOOK_ALLOW_PRIVATE"),
        webhook_timeout_s=float(r.integer("AUTOKEY_WEBHOOK_TIMEOUT_S", 10, 1, 60)),
        g2a_reservation_ttl_s=r.integer("AUTOKEY_G2A_RESERVATION_TTL_S", 1800, 10, 24 * 3600),
        g2a_stock_sync_interval_s=float(
            r.integer("AUTOKEY_G2A_STOCK_SYNC_INTERVAL_S", 30, 1, 3600)
        ),
        g2a_rate_limit=_rate(r),
    )
    if r.problems:
        raise SettingsError(r.problems)
    return settings


class _LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
