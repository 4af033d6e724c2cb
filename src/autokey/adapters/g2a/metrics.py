"""Prometheus metrics of the G2A integration, registered in the registry handed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


def status_class(status: int | None) -> str:
    """`2xx`..`5xx`, or `error` when no HTTP answer arrived (timeout, connection)."""
    return f"{status // 100}xx" if status is not None else "error"


class G2AMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.request_duration = Histogram(
            "g2a_request_duration_seconds",
            "Latency of G2A HTTP calls, one observation per attempt.",
            ["endpoint", "status_class"],
            registry=registry,
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.retries = Counter(
            "g2a_retries_total",
            "G2A call attempts retried.",
            ["endpoint", "reason"],
            registry=registry,
        )
        self.token_fetches = Counter(
            "g2a_token_fetches_total",
            "Import API token fetches.",
            ["flow", "outcome"],
            registry=registry,
        )
        self.token_cache = Counter(
            "g2a_token_cache_total",
            "Token cache lookups and degradations.",
            ["result"],
            registry=registry,
        )
        self.errors = Counter(
            "g2a_errors_total",
            "G2A calls that failed, by error kind.",
            ["endpoint", "kind"],
            registry=registry,
        )

    def observe_request(self, endpoint: str, status: int | None, seconds: float) -> None:
        self.request_duration.labels(endpoint, status_class(status)).observe(seconds)

    def retried(self, endpoint: str, reason: str) -> None:
        self.retries.labels(endpoint, reason).inc()

    def token_fetched(self, flow: str, outcome: str) -> None:
        self.token_fetches.labels(flow, outcome).inc()

    def token_cache_hit(self) -> None:
        self.token_cache.labels("hit").inc()

    def token_cache_miss(self) -> None:
        self.token_cache.labels("miss").inc()

    def token_cache_fallback(self) -> None:
        """An operation served by the process-local cache because the shared one is down."""
        self.token_cache.labels("fallback").inc()

    def error(self, endpoint: str, kind: str) -> None:
        self.errors.labels(endpoint, kind).inc()
