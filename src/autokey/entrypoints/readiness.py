"""Readiness: what `GET /health/ready` reports (`web.health` serves it).

It reports each dependency: the database (required), the idempotency store (the same
database, a query on its own table; required), Redis (optional: the token cache falls back to
a process-local one, so a down Redis is only `degraded`) and the G2A token probe (optional,
rate-limited so that health checks never hammer G2A). Reports carry stable error codes, never
exception messages (a driver message may hold a DSN or a host name).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog

from autokey.domain.model.errors import (
    StoreUnavailable,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from autokey.ports.store import Store

log = structlog.get_logger("autokey.health")

Check = Callable[[], Awaitable[Any]]
CircuitState = Callable[[], Awaitable[str]]
"""Where the G2A circuit breaker stands: `closed`, `opened` or `half-opened`."""
IDEMPOTENCY_PROBE_SCOPE = "autokey:health"


class ComponentStatus(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    DEGRADED = "degraded"
    DISABLED = "disabled"


class Readiness(enum.StrEnum):
    READY = "ready"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"


@attrs.frozen(kw_only=True)
class ComponentReport:
    status: ComponentStatus
    latency_ms: float | None = None
    code: str | None = None
    """Why the component is not up: a stable identifier, never an exception message."""
    required: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status.value, "latencyMs": self.latency_ms}
        if self.code is not None:
            body["code"] = self.code
        return body


@attrs.frozen(kw_only=True)
class ReadinessReport:
    status: Readiness
    g2a_environment: str | None
    schema_version: int | None
    components: dict[str, ComponentReport]

    @property
    def http_status(self) -> int:
        return 503 if self.status is Readiness.UNAVAILABLE else 200

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "g2aEnvironment": self.g2a_environment,
            "schemaVersion": self.schema_version,
            "components": {name: c.to_json() for name, c in self.components.items()},
        }


def _error_code(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, StoreUnavailable):
        return "store_unavailable"
    if isinstance(error, UpstreamAuthError):
        return "upstream_auth_refused"
    if isinstance(error, UpstreamRateLimited):
        return "upstream_rate_limited"
    if isinstance(error, UpstreamUnavailable):
        return "upstream_unavailable"
    if isinstance(error, UpstreamError):
        return "upstream_error"
    return "error"


class ReadinessChecker:
    """Checks every dependency concurrently, each within `timeout_s`.

    `redis_ping` and `g2a_probe` are optional hooks (None: the component is `disabled`):
    `redis_ping()` raises when Redis does not answer; `g2a_probe()` is
    `MarketplaceClient.probe_token`. The G2A probe runs at most once per `g2a_interval_s`,
    whatever its outcome and however many checks arrive at once; in between, the last
    result is reported."""

    def __init__(
        self,
        store: Store,
        *,
        g2a_environment: str | None = None,
        redis_ping: Check | None = None,
        g2a_probe: Check | None = None,
        g2a_circuit: CircuitState | None = None,
        timeout_s: float = 2.0,
        g2a_interval_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._g2a_environment = g2a_environment
        self._redis_ping, self._g2a_probe = redis_ping, g2a_probe
        self._g2a_circuit = g2a_circuit
        self._timeout_s, self._g2a_interval_s = timeout_s, g2a_interval_s
        self._monotonic = monotonic
        self._g2a_lock = asyncio.Lock()
        self._g2a_last: tuple[float, ComponentReport] | None = None

    async def check(self) -> ReadinessReport:
        database, idempotency, schema, redis, g2a, circuit = await asyncio.gather(
            self._timed(self._store.ping, required=True),
            self._timed(self._idempotency_query, required=True),
            self._schema_version(),
            self._redis(),
            self._g2a(),
            self._circuit(),
        )
        components = {
            "database": database,
            "idempotencyStore": idempotency,
            "redis": redis,
            "g2a": g2a,
            "g2aCircuit": circuit,
        }
        if any(c.required and c.status is ComponentStatus.DOWN for c in components.values()):
            status = Readiness.UNAVAILABLE
        elif any(
            c.status in (ComponentStatus.DOWN, ComponentStatus.DEGRADED)
            for c in components.values()
        ):
            status = Readiness.DEGRADED
        else:
            status = Readiness.READY
        return ReadinessReport(
            status=status,
            g2a_environment=self._g2a_environment,
            schema_version=schema,
            components=components,
        )

    async def _timed(
        self, check: Check, *, required: bool = False, failed: ComponentStatus | None = None
    ) -> ComponentReport:
        started = self._monotonic()
        try:
            await asyncio.wait_for(check(), self._timeout_s)
        except Exception as error:  # any failure is a report, never a crashed health check
            code = _error_code(error)
            log.warning("health.component_down", check=_name(check), code=code)
            return ComponentReport(
                status=failed or ComponentStatus.DOWN,
                latency_ms=self._elapsed_ms(started),
                code=code,
                required=required,
            )
        return ComponentReport(
            status=ComponentStatus.UP, latency_ms=self._elapsed_ms(started), required=required
        )

    def _elapsed_ms(self, started: float) -> float:
        return round((self._monotonic() - started) * 1000, 2)

    async def _idempotency_query(self) -> None:
        async with self._store.transaction() as tx:
            await tx.idempotency.get(IDEMPOTENCY_PROBE_SCOPE, "probe")

    async def _schema_version(self) -> int | None:
        try:
            return await asyncio.wait_for(self._store.schema_version(), self._timeout_s)
        except Exception:  # reported through the database component already
            return None

    async def _redis(self) -> ComponentReport:
        if self._redis_ping is None:
            return ComponentReport(status=ComponentStatus.DISABLED)
        return await self._timed(self._redis_ping, failed=ComponentStatus.DEGRADED)

    async def _circuit(self) -> ComponentReport:
        """The breaker in front of G2A: degraded while open (calls are refused at once)."""
        if self._g2a_circuit is None:
            return ComponentReport(status=ComponentStatus.DISABLED)
        if await self._g2a_circuit() == "closed":
            return ComponentReport(status=ComponentStatus.UP)
        return ComponentReport(status=ComponentStatus.DEGRADED, code="circuit_open")

    async def _g2a(self) -> ComponentReport:
        if self._g2a_probe is None:
            return ComponentReport(status=ComponentStatus.DISABLED)
        async with self._g2a_lock:  # concurrent checks share one probe
            last = self._g2a_last
            if last is not None and self._monotonic() - last[0] < self._g2a_interval_s:
                return last[1]
            started = self._monotonic()
            report = await self._timed(self._g2a_probe)
            self._g2a_last = (started, report)
            return report


def _name(check: Check) -> str:
    return getattr(check, "__name__", type(check).__name__)
