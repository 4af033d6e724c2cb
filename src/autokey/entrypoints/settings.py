"""The one typed, immutable configuration, loaded once from the environment.

`load_settings(environ)` is pure: it reads nothing else and raises `SettingsError` listing
every problem at once. No value of a secret variable ever appears in a message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import attrs

from autokey.adapters.crypto import parse_master_key
from autokey.adapters.g2a.config import G2AConfig, InvalidG2AConfig, g2a_config_from_env

DEFAULT_SQLITE_PATH = "./autokey.db"
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

    @property
    def sqlite_path(self) -> Path:
        return Path(self.url)


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
    workers: int
    """`serve` processes; 0: one per CPU on PostgreSQL, one otherwise."""
    uploads: UploadLimits = UploadLimits()
    redis_url: str | None = attrs.field(repr=False)
    g2a: G2AConfig | None = None
    """None when no G2A_* variable is set."""
    webhook_secrets: tuple[bytes, ...] = attrs.field(default=(), repr=False)
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
    if not url:
        return DatabaseSettings(kind=StoreKind.SQLITE, url=DEFAULT_SQLITE_PATH)
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        return DatabaseSettings(kind=StoreKind.POSTGRES, url=url, pool_max=pool_max)
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
    elif database.kind is StoreKind.POSTGRES:
        r.problems.append("ENCRYPTION_KEY is required with PostgreSQL (64 hex characters)")
    elif database.kind is StoreKind.SQLITE:
        return CryptoSettings(master_keys=(), key_file=database.sqlite_path.with_suffix(".key"))
    return CryptoSettings(master_keys=())


def _g2a(r: _Reader, production: bool) -> G2AConfig | None:
    try:
        return g2a_config_from_env(r.environ, production=production)
    except InvalidG2AConfig as exc:
        r.problems.extend(f"{p.variable}: {p.reason}" for p in exc.problems)
        return None


def _webhook_secrets(r: _Reader) -> tuple[bytes, ...]:
    current = r.text("G2A_API_HASH") or r.text("G2A_API_SECRET")
    previous = r.text("G2A_API_HASH_PREVIOUS")
    if previous and not current:
        r.problems.append("G2A_API_HASH_PREVIOUS is set but G2A_API_HASH is not")
    return tuple(s.encode() for s in (current, previous) if s)


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
        workers=r.integer("AUTOKEY_WORKERS", 0, 0, 256),
        uploads=UploadLimits(
            max_bytes=r.integer("AUTOKEY_UPLOAD_MAX_BYTES", DEFAULT_UPLOAD_MAX_BYTES, 1, 1 << 40),
            max_lines=r.integer(
                "AUTOKEY_UPLOAD_MAX_LINES", DEFAULT_UPLOAD_MAX_LINES, 1, (1 << 32) - 1
            ),
        ),
        redis_url=r.text("AUTOKEY_REDIS_URL") or None,
        g2a=_g2a(r, production),
        webhook_secrets=_webhook_secrets(r),
    )
    if r.problems:
        raise SettingsError(r.problems)
    return settings


class _LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
