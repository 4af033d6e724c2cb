"""The G2A client over real HTTP against the simulator (no Redis needed)."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import aiohttp
import attrs
import pytest
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from autokey.adapters.g2a.auth import export_api_key
from autokey.adapters.g2a.config import TokenFlow
from autokey.adapters.g2a.metrics import G2AMetrics
from autokey.adapters.g2a.retry import RetryPolicy
from autokey.adapters.g2a.simulator import (
    RunningSimulator,
    SimulatorConfig,
    simulated_key,
    start_simulator,
)
from autokey.adapters.g2a.webhook_signing import sign_webhook
from autokey.domain.model.errors import (
    UpstreamAuthError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from autokey.domain.model.marketplace import (
    MarketplaceErrorCode,
    MarketplaceOrderStatus,
    ProductFilters,
    TokenSource,
)
from tests.integration.g2a.g2a_it_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    EMAIL,
    ClientFactory,
    FakeClock,
    g2a_config,
    set_faults,
)

ONE_RETRY_AFTER = RetryPolicy(
    max_retries=3, base_s=0.0, cap_s=0.0, total_cap_s=5.0, retry_after_cap_s=0.05
)


async def test_catalogue_serves_the_official_fixtures(make_client: ClientFactory) -> None:
    client = make_client()
    product = await client.get_product("10000068865001")
    assert (product.qty, product.min_price, product.platform) == (101, Decimal("25.25"), "Origin")
    other = await client.get_product("10000149026001")
    assert (other.qty, other.min_price) == (20, Decimal("1.5"))
    page = await client.list_products(1)
    assert page.page == 1
    assert page.total == 42
    assert len(page.items) == 20
    assert not page.is_last
    cheap = await client.list_products(1, ProductFilters(min_price_to=Decimal("2"), min_qty=1))
    assert all(p.min_price <= 2 and p.qty >= 1 for p in cheap.items)


async def test_an_unlisted_product_is_not_found(make_client: ClientFactory) -> None:
    with pytest.raises(UpstreamNotFound):
        await make_client().get_product("999")


async def test_buying_a_key_end_to_end_and_the_key_downloads_once(
    make_client: ClientFactory,
) -> None:
    client = make_client()
    order = await client.create_order("10000149026001", max_price=Decimal("2.00"), currency="EUR")
    assert (order.price, order.currency) == (Decimal("1.5"), "EUR")
    details = await client.order_details(order.order_id)
    assert details.status == MarketplaceOrderStatus.NEW
    with pytest.raises(UpstreamRejected) as not_ready:
        await client.order_key(order.order_id)
    assert not_ready.value.code == MarketplaceErrorCode.KEY_NOT_READY
    payment = await client.pay_order(order.order_id)
    assert payment.paid
    assert payment.transaction_id
    assert (
        await client.order_details(order.order_id)
    ).known_status is MarketplaceOrderStatus.COMPLETE
    assert await client.order_key(order.order_id) == simulated_key(order.order_id)
    with pytest.raises(UpstreamRejected) as again:
        await client.order_key(order.order_id)
    assert again.value.code == MarketplaceErrorCode.KEY_ALREADY_DOWNLOADED
    assert again.value.status == 400


async def test_no_offer_under_max_price_is_rejected_without_retry(
    make_client: ClientFactory, simulator: RunningSimulator
) -> None:
    with pytest.raises(UpstreamRejected) as info:
        await make_client().create_order("10000068865001", max_price=Decimal("1"))
    assert (info.value.status, info.value.code) == (400, "ORD01")
    assert simulator.state.requests == 1


async def test_unknown_order_is_not_found_without_retry(
    make_client: ClientFactory, simulator: RunningSimulator
) -> None:
    with pytest.raises(UpstreamNotFound) as info:
        await make_client().order_details("404404")
    assert info.value.code == "ORD02"
    assert simulator.state.requests == 1


async def test_wrong_export_credentials_are_an_auth_error(make_client: ClientFactory) -> None:
    with pytest.raises(UpstreamAuthError) as info:
        await make_client(client_secret="wrong").get_product("10000068865001")
    assert info.value.code == "AUTH02"


async def test_the_published_sandbox_pair_is_accepted(make_client: ClientFactory) -> None:
    client = make_client(
        client_id="qdaiciDiyMaTjxMt",
        email="sandboxapitest@g2a.com",
        client_secret="b0d293f6-e1d2-4629-8264-fd63b5af3207b0d293f6-e1d2-4629-8264-fd63b5af3207",
    )
    assert (await client.get_product("10000068865001")).id == "10000068865001"


@pytest.mark.parametrize("flow", [TokenFlow.OAUTH2, TokenFlow.HASH])
async def test_both_token_flows_fetch_once_then_serve_from_cache(
    make_client: ClientFactory, simulator: RunningSimulator, flow: TokenFlow
) -> None:
    client = make_client(flow=flow)
    first = await client.probe_token()
    second = await client.probe_token()
    assert (first.source, second.source) == (TokenSource.FETCHED, TokenSource.CACHE)
    assert first.token_type.lower() == "bearer"
    publication = await client.publish_offer_stock("offer-1", 7)
    assert publication.job_id
    assert simulator.state.offers["offer-1"] == 7
    assert simulator.state.token_fetches == 1


@pytest.mark.parametrize("flow", [TokenFlow.OAUTH2, TokenFlow.HASH])
async def test_refused_token_credentials_are_an_auth_error(
    make_client: ClientFactory, flow: TokenFlow
) -> None:
    with pytest.raises(UpstreamAuthError):
        await make_client(flow=flow, client_secret="nope").probe_token()


async def test_token_is_refreshed_inside_the_refresh_window_only(
    make_client: ClientFactory, simulator: RunningSimulator, clock: FakeClock
) -> None:
    client = make_client()
    await client.probe_token()
    clock.advance(200)
    assert (await client.probe_token()).source is TokenSource.CACHE
    clock.advance(41)  # 59 s left of 300: < 60 s
    assert (await client.probe_token()).source is TokenSource.FETCHED
    assert simulator.state.token_fetches == 2


async def test_a_rejected_cached_token_is_replaced_once(
    make_client: ClientFactory, simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    client = make_client()
    await client.publish_offer_stock("offer-1", 1)
    async with session.post(f"{simulator.url}/__admin/revoke-tokens"):
        pass
    await client.publish_offer_stock("offer-1", 2)
    assert simulator.state.offers["offer-1"] == 2
    assert simulator.state.token_fetches == 2


async def test_unknown_offer_is_not_found(make_client: ClientFactory) -> None:
    with pytest.raises(UpstreamNotFound):
        await make_client().publish_offer_stock("no-such-offer", 3)


async def test_429_retry_after_is_honoured_then_the_call_succeeds(
    make_client: ClientFactory, simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    await set_faults(simulator, session, rate_limit_count=2, retry_after_s=0.05)
    with structlog.testing.capture_logs() as logs:
        product = await make_client(policy=ONE_RETRY_AFTER).get_product("10000068865001")
    assert product.qty == 101
    waits = [e["wait_ms"] for e in logs if e["event"] == "g2a.retry"]
    assert waits == [50, 50]
    attempts = [e["attempt"] for e in logs if e["event"] == "g2a.request"]
    assert attempts == [1, 2, 3]


async def test_persistent_429_becomes_rate_limited(
    make_client: ClientFactory, simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    await set_faults(simulator, session, rate_limit_count=10, retry_after_s=7)
    with pytest.raises(UpstreamRateLimited) as info:
        await make_client(policy=RetryPolicy.no_wait(max_retries=2)).list_products(1)
    assert info.value.retry_after_s == 7
    assert simulator.state.requests == 3


async def test_5xx_is_retried_up_to_the_limit_then_unavailable(
    make_client: ClientFactory, simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    await set_faults(simulator, session, server_error_count=10, server_error_status=502)
    registry = CollectorRegistry()
    client = make_client(policy=RetryPolicy.no_wait(max_retries=2), metrics=G2AMetrics(registry))
    with pytest.raises(UpstreamUnavailable) as info:
        await client.list_products(1)
    assert (info.value.status, info.value.code, info.value.attempts) == (502, "ORD122", 3)
    assert simulator.state.requests == 3
    retries = registry.get_sample_value(
        "g2a_retries_total", {"endpoint": "GET /products", "reason": "server_error"}
    )
    assert retries == 2


async def test_a_5xx_burst_shorter_than_the_limit_is_absorbed(
    make_client: ClientFactory, simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    await set_faults(simulator, session, server_error_count=2)
    assert (await make_client().list_products(1)).total == 42


async def test_create_order_is_never_retried_after_sending(
    make_client: ClientFactory, simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    await set_faults(simulator, session, server_error_count=1, path_prefix="/v1/order")
    with pytest.raises(UpstreamUnavailable):
        await make_client().create_order("10000068865001")
    assert simulator.state.requests == 1
    assert simulator.state.orders == {}


async def test_create_order_is_retried_when_the_connection_is_refused(
    make_client: ClientFactory, simulator: RunningSimulator
) -> None:
    registry = CollectorRegistry()
    closed_port = g2a_config(simulator.url, export_base_url="http://127.0.0.1:1/v1")
    client = make_client(config=closed_port, metrics=G2AMetrics(registry))
    with pytest.raises(UpstreamUnavailable):
        await client.create_order("10000068865001")
    assert (
        registry.get_sample_value(
            "g2a_retries_total", {"endpoint": "POST /order", "reason": "connection"}
        )
        == 3
    )


async def test_the_timeout_is_enforced(
    make_client: ClientFactory, simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    await set_faults(simulator, session, latency_s=0.6)
    client = make_client(timeout_s=0.15, policy=RetryPolicy.no_wait(max_retries=1))
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as info:
        await client.get_product("10000068865001")
    assert time.monotonic() - started < 0.55  # two attempts of 0.15 s, not two of 0.6 s
    assert info.value.status is None


async def test_a_malformed_body_is_a_protocol_error(
    make_client: ClientFactory, simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    await set_faults(simulator, session, malformed_count=1)
    with pytest.raises(UpstreamProtocolError):
        await make_client().list_products(1)


async def test_a_well_formed_body_of_the_wrong_shape_is_a_protocol_error(
    make_client: ClientFactory, simulator: RunningSimulator
) -> None:
    simulator.state.products["10000068865001"]["minPrice"] = "not a price"
    with pytest.raises(UpstreamProtocolError):
        await make_client().get_product("10000068865001")


async def test_requests_carry_the_correlation_id_from_the_context(
    make_client: ClientFactory,
) -> None:
    structlog.contextvars.bind_contextvars(correlation_id="corr-123")
    try:
        with structlog.testing.capture_logs() as logs:
            await make_client().get_product("10000068865001")
    finally:
        structlog.contextvars.unbind_contextvars("correlation_id")
    line = next(e for e in logs if e["event"] == "g2a.request")
    assert line["correlation_id"] == "corr-123"
    assert line["path"] == "/v1/products?id=10000068865001"
    assert line["status"] == 200
    assert line["env"] == "sandbox"
    assert line["method"] == "GET"
    assert isinstance(line["latency_ms"], float)


async def test_no_secret_reaches_any_log_line_of_a_full_run(
    make_client: ClientFactory, simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    keys: list[str] = []
    with structlog.testing.capture_logs() as logs:
        for flow in TokenFlow:
            client = make_client(flow=flow)
            await client.probe_token()
            await client.publish_offer_stock("offer-1", 4)
            order = await client.create_order("10000068865001")
            await client.pay_order(order.order_id)
            keys.append(await client.order_key(order.order_id))
        await set_faults(simulator, session, server_error_count=1, rate_limit_count=1)
        await make_client().list_products(1)
        with pytest.raises(UpstreamAuthError):
            await make_client(client_secret="wrong-secret-xyz").probe_token()
    secrets = [
        CLIENT_SECRET,
        EMAIL,
        export_api_key(CLIENT_ID, EMAIL, CLIENT_SECRET),
        "wrong-secret-xyz",
        *keys,
        *simulator.state.tokens,
    ]
    assert len(simulator.state.tokens) >= 2
    text = "\n".join(repr(entry) for entry in logs)
    assert any(e["event"] == "g2a.request" for e in logs)
    for secret in secrets:
        assert secret not in text


async def test_paid_orders_send_signed_webhooks(
    sim_config: SimulatorConfig, session: aiohttp.ClientSession, make_client: ClientFactory
) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhooks/g2a", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    callback = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/g2a"
    config = attrs.evolve(sim_config, callback_url=callback)
    sim = await start_simulator(config)
    try:
        client = make_client(config=g2a_config(sim.url))
        order = await client.create_order("10000068865001")
        await client.pay_order(order.order_id)
        for _ in range(100):
            if len(received) == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await sim.stop()
        await runner.cleanup()
    assert len(received) == 2
    types = []
    for body, headers in received:
        expected = sign_webhook(
            CLIENT_SECRET.encode(), body, headers["X-G2A-Timestamp"], headers["X-G2A-Nonce"]
        )
        assert headers["X-G2A-Signature"] == expected
        event = json.loads(body)
        assert event["order_id"] == order.order_id
        assert set(event) == {"event_id", "type", "order_id", "occurred_at", "data"}
        types.append(event["type"])
    assert types == ["order.paid", "order.complete"]
