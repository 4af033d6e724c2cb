"""Request ids, the request log line, /metrics and readiness, on the in-memory store."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from autokey.adapters.g2a.metrics import G2AMetrics
from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.errors import StoreUnavailable, UpstreamAuthError
from autokey.domain.model.keys import PoolCounts
from autokey.entrypoints.metrics import DomainMetrics, KeyStockCollector
from autokey.entrypoints.readiness import ReadinessChecker
from autokey.ports.store import UnitOfWork
from tests.http import Api, captured_logs, running_api

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


class SwitchableStore(MemoryStore):
    """A memory store that can be made unreachable, as a real database can."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    @asynccontextmanager
    async def transaction(self, *, optimistic: bool = False) -> AsyncIterator[UnitOfWork]:
        if self.down:
            raise StoreUnavailable(store="memory")
        async with super().transaction() as tx:
            yield tx

    async def ping(self) -> None:
        if self.down:
            raise StoreUnavailable(store="memory")


@pytest.fixture
async def store() -> SwitchableStore:
    return SwitchableStore()


@pytest.fixture
async def api(store: SwitchableStore) -> AsyncIterator[Api]:
    async with running_api(store) as running:
        yield running


def _lines(buffer: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


# ---- request ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("POST", "/key-pools", 401),  # a problem response
        ("GET", "/no/such/route", 404),
        ("PUT", "/health", 405),
    ],
)
async def test_caller_ids_are_echoed_on_every_response(
    api: Api, method: str, path: str, status: int
) -> None:
    sent = {"X-Request-ID": "req-42", "X-Correlation-ID": "flow:7/a b"}
    response = await api.client.request(method, path, headers=sent)
    assert response.status == status
    assert response.headers["X-Request-ID"] == "req-42"
    assert response.headers["X-Correlation-ID"] == "flow:7/a b"


async def test_missing_ids_are_generated_and_differ_per_request(api: Api) -> None:
    first, second = await api.client.get("/health"), await api.client.get("/health")
    ids = [r.headers[h] for r in (first, second) for h in ("X-Request-ID", "X-Correlation-ID")]
    assert all(HEX_ID.match(i) for i in ids)
    assert len(set(ids)) == 4


@pytest.mark.parametrize("bad", ["x" * 129, "caf\u00e9", "tab\there", ""])
async def test_invalid_ids_are_replaced(api: Api, bad: str) -> None:
    response = await api.client.get(
        "/health", headers={"X-Request-ID": bad, "X-Correlation-ID": bad}
    )
    assert HEX_ID.match(response.headers["X-Request-ID"])
    assert HEX_ID.match(response.headers["X-Correlation-ID"])


async def test_an_id_of_128_printable_characters_is_kept(api: Api) -> None:
    value = "a" * 127 + "~"
    response = await api.client.get("/health", headers={"X-Request-ID": value})
    assert response.headers["X-Request-ID"] == value


# ---- logs ---------------------------------------------------------------------------------


async def test_one_request_line_with_route_template_status_and_latency(api: Api) -> None:
    seller = await api.token()
    async with captured_logs() as buffer:
        await api.client.get(
            "/key-pools/0190f5e2-0000-7000-8000-000000000000",
            headers={**seller, "X-Request-ID": "r-1", "X-Correlation-ID": "c-1"},
        )
        structlog.get_logger("test").info("test.after_request")
    lines = _lines(buffer)
    requests = [line for line in lines if line["event"] == "http.request"]
    assert len(requests) == 1
    line = requests[0]
    assert line["level"] == "info"
    assert line["method"] == "GET"
    assert line["route"] == "/key-pools/{pool_id}"
    assert line["status"] == 404
    assert line["request_id"] == "r-1"
    assert line["correlation_id"] == "c-1"
    assert isinstance(line["latency_ms"], float)
    after = next(line for line in lines if line["event"] == "test.after_request")
    assert "request_id" not in after


async def test_every_log_line_of_a_request_carries_its_ids(
    api: Api, store: SwitchableStore
) -> None:
    seller = await api.token()
    store.down = True
    async with captured_logs() as buffer:
        response = await api.client.post(
            "/key-pools", json={}, headers={**seller, "X-Request-ID": "r-9"}
        )
    assert response.status == 503
    assert response.headers["X-Request-ID"] == "r-9"
    lines = _lines(buffer)
    assert {line["event"] for line in lines} >= {"http.request_failed", "http.request"}
    assert all(line["request_id"] == "r-9" for line in lines)


# ---- metrics ------------------------------------------------------------------------------


async def _scrape(api: Api) -> dict[str, Any]:
    response = await api.metrics.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    return {f.name: f for f in text_string_to_metric_families(await response.text())}


def _samples(family: Any, name: str) -> list[tuple[Mapping[str, str], float]]:
    return [(s.labels, s.value) for s in family.samples if s.name == name]


async def test_http_durations_are_labelled_by_route_template_never_raw_path(api: Api) -> None:
    seller = await api.token()
    await api.client.get("/key-pools/0190f5e2-0000-7000-8000-000000000001", headers=seller)
    await api.client.get("/key-pools/0190f5e2-0000-7000-8000-000000000002", headers=seller)
    await api.client.get("/definitely/not/here")
    families = await _scrape(api)
    counts = _samples(
        families["http_server_request_duration_seconds"],
        "http_server_request_duration_seconds_count",
    )
    by_route = {(labels["route"], labels["status_class"]): value for labels, value in counts}
    assert by_route[("/key-pools/{pool_id}", "4xx")] == 2
    assert by_route[("unmatched", "4xx")] == 1
    assert not any("0190f5e2" in labels["route"] for labels, _ in counts)
    assert not any(labels["route"] == "/definitely/not/here" for labels, _ in counts)


async def test_domain_counters_and_g2a_series_share_the_container_registry(api: Api) -> None:
    registry = api.container.metrics_registry()
    domain = api.container.domain_metrics()
    domain.orders_transitions.labels("paid").inc()
    domain.webhook_outcomes.labels("replayed_nonce").inc()
    G2AMetrics(registry).observe_request("token", 200, 0.1)
    families = await _scrape(api)
    transitions = {
        labels["transition"]: v
        for labels, v in _samples(
            families["autokey_order_transitions"], "autokey_order_transitions_total"
        )
    }
    assert transitions["paid"] == 1
    assert transitions["fulfilled"] == 0
    outcomes = _samples(families["autokey_webhook_outcomes"], "autokey_webhook_outcomes_total")
    assert ({"reason": "replayed_nonce"}, 1.0) in outcomes
    assert "g2a_request_duration_seconds" in families


async def test_keys_by_status_per_pool_at_scrape_time(api: Api) -> None:
    seller = await api.token()
    pool = (await (await api.client.post("/key-pools", json={}, headers=seller)).json())["id"]
    keys = {"keys": ["AAAAA-BBBBB-CCCCC", "DDDDD-EEEEE-FFFFF"]}
    upload = await api.client.post(f"/key-pools/{pool}/keys/upload", json=keys, headers=seller)
    assert upload.status == 200
    families = await _scrape(api)
    samples = {
        (labels["pool"], labels["status"]): value
        for labels, value in _samples(families["autokey_keys"], "autokey_keys")
    }
    assert samples[(pool, "available")] == 2
    assert samples[(pool, "delivered")] == 0


async def test_pool_names_join_on_pool_escaped_and_bounded(api: Api) -> None:
    seller = await api.token()
    name = 'Steam "EU"\\ keys ' + "x" * 100  # control characters are refused at the edge
    created = await api.client.post("/key-pools", json={"name": name}, headers=seller)
    pool = (await created.json())["id"]
    keys = {"keys": ["AAAAA-BBBBB-CCCCC"]}
    assert (await api.client.post(f"/key-pools/{pool}/keys/upload", json=keys, headers=seller)).ok
    families = await _scrape(api)  # the parser fails on a badly escaped label
    ((labels, value),) = _samples(families["autokey_pool_info"], "autokey_pool_info")
    assert labels["pool"] == pool
    assert value == 1
    assert labels["name"].startswith('Steam "EU"\\ keys xx')
    assert len(labels["name"]) == 64


async def test_key_stock_is_bounded_to_the_top_pools_plus_other() -> None:
    stock = {f"pool-{i:03}": PoolCounts(available=i, delivered=1) for i in range(60)}

    async def source() -> Mapping[str, PoolCounts]:
        return stock

    collector = KeyStockCollector(source, registry=CollectorRegistry(), top=50)
    assert await collector.refresh()
    families = {f.name: f for f in collector.collect()}
    samples = _samples(families["autokey_keys"], "autokey_keys")
    pools = {labels["pool"] for labels, _ in samples}
    assert len(pools) == 51
    assert "other" in pools
    assert "pool-000" not in pools  # the smallest pools are the ones aggregated
    available = sum(v for labels, v in samples if labels["status"] == "available")
    assert available == sum(range(60))


async def test_key_stock_keeps_the_last_snapshot_when_the_store_fails() -> None:
    calls = 0

    async def source() -> Mapping[str, PoolCounts]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise StoreUnavailable(store="memory")
        return {"p": PoolCounts(available=3)}

    now = [0.0]
    collector = KeyStockCollector(source, min_interval_s=10, monotonic=lambda: now[0])
    assert await collector.refresh()
    now[0] = 5.0
    assert await collector.refresh()  # cached: the source is not asked again
    assert calls == 1
    now[0] = 20.0
    assert not await collector.refresh()
    families = {f.name: f for f in collector.collect()}
    assert ({"pool": "p", "status": "available"}, 3.0) in _samples(
        families["autokey_keys"], "autokey_keys"
    )
    assert families["autokey_keys_snapshot_age_seconds"].samples[0].value == 20.0


def test_domain_metrics_start_every_known_series_at_zero() -> None:
    registry = CollectorRegistry()
    DomainMetrics(registry)
    assert (
        registry.get_sample_value("autokey_order_transitions_total", {"transition": "expired"}) == 0
    )
    assert (
        registry.get_sample_value("autokey_webhook_outcomes_total", {"reason": "invalid_signature"})
        == 0
    )


# ---- readiness ----------------------------------------------------------------------------


async def test_ready_reports_every_component(api: Api) -> None:
    response = await api.client.get("/health/ready")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ready"
    assert body["schemaVersion"] == 0
    assert body["g2aEnvironment"] is None
    components = body["components"]
    assert components["database"]["status"] == "up"
    assert components["idempotencyStore"]["status"] == "up"
    assert components["redis"] == {"status": "disabled", "latencyMs": None}
    assert components["g2a"] == {"status": "disabled", "latencyMs": None}


async def test_database_down_is_503_unavailable_with_a_code(
    api: Api, store: SwitchableStore
) -> None:
    store.down = True
    response = await api.client.get("/health/ready")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "unavailable"
    assert body["components"]["database"]["status"] == "down"
    assert body["components"]["database"]["code"] == "store_unavailable"
    assert body["components"]["idempotencyStore"]["status"] == "down"
    assert body["schemaVersion"] == 0 or body["schemaVersion"] is None
    store.down = False
    assert (await api.client.get("/health/ready")).status == 200


async def test_redis_down_is_degraded_not_unavailable() -> None:
    async def redis_ping() -> None:
        raise ConnectionError("redis://:s3cret@10.0.0.1:6379 refused")

    report = await ReadinessChecker(MemoryStore(), redis_ping=redis_ping).check()
    assert report.http_status == 200
    body = report.to_json()
    assert body["status"] == "degraded"
    assert body["components"]["redis"]["status"] == "degraded"
    assert body["components"]["redis"]["code"] == "error"
    assert "s3cret" not in json.dumps(body)


async def test_a_hanging_dependency_times_out() -> None:
    async def redis_ping() -> None:
        await asyncio.sleep(10)

    checker = ReadinessChecker(MemoryStore(), redis_ping=redis_ping, timeout_s=0.05)
    body = (await checker.check()).to_json()
    assert body["components"]["redis"]["code"] == "timeout"


async def test_g2a_is_probed_at_most_once_per_interval() -> None:
    calls = 0

    async def probe() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 2:
            raise UpstreamAuthError(upstream="g2a", operation="token", status=401)

    now = [100.0]
    checker = ReadinessChecker(
        MemoryStore(),
        g2a_probe=probe,
        g2a_environment="sandbox",
        g2a_interval_s=30,
        monotonic=lambda: now[0],
    )
    reports = await asyncio.gather(*(checker.check() for _ in range(20)))
    assert calls == 1
    assert all(r.to_json()["components"]["g2a"]["status"] == "up" for r in reports)
    assert reports[0].to_json()["g2aEnvironment"] == "sandbox"
    now[0] += 29
    await checker.check()
    assert calls == 1
    now[0] += 2
    body = (await checker.check()).to_json()
    assert calls == 2
    assert body["status"] == "degraded"
    assert body["components"]["g2a"] == {
        "status": "down",
        "latencyMs": body["components"]["g2a"]["latencyMs"],
        "code": "upstream_auth_refused",
    }
    await checker.check()
    assert calls == 2  # a failure is cached as well: a down G2A is not hammered either
