"""G2A-sourced delivery end to end: real `autokey serve` processes, the G2A simulator over
loopback HTTP, and a crash between creating and paying the G2A order."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from autokey.adapters.g2a.auth import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_EMAIL
from autokey.adapters.g2a.simulator import (
    FaultConfig,
    RunningSimulator,
    SimulatorConfig,
    start_simulator,
)
from tests import logs
from tests.integration.server import (
    autokey,
    metrics_url,
    serve_process,
    server_env,
    token,
    with_metrics,
)
from tests.services import scratch_postgres

PRODUCT = "10000068865001"


def g2a_env(simulator_url: str) -> dict[str, str]:
    return {
        "G2A_API_URL": simulator_url,
        "G2A_API_KEY": SANDBOX_CLIENT_ID,
        "G2A_API_HASH": SANDBOX_CLIENT_SECRET,
        "G2A_EMAIL": SANDBOX_EMAIL,
        "G2A_ENV": "sandbox",
        "AUTOKEY_SWEEP_INTERVAL_S": "1",
    }


async def _call(
    s: aiohttp.ClientSession,
    method: str,
    url: str,
    auth: str,
    body: Any = None,
    expect: tuple[int, ...] = (200, 201),
) -> Any:
    async with s.request(
        method, url, json=body, headers={"Authorization": f"Bearer {auth}"}
    ) as response:
        payload = await response.json(content_type=None)
        assert response.status in expect, payload
        return payload


async def _paid_g2a_order(
    s: aiohttp.ClientSession, api: str, seller: str, buyer: str, max_price: str = "30.00"
) -> str:
    pool = await _call(s, "POST", f"{api}/key-pools", seller, {"name": "g2a"})
    offer = await _call(
        s,
        "POST",
        f"{api}/offers/draft",
        seller,
        {
            "title": "Sourced",
            "price": {"amount": "39.99", "currency": "EUR"},
            "deliveryType": "G2A",
            "keyPoolId": pool["id"],
            "g2aProductId": PRODUCT,
            "maxPrice": {"amount": max_price, "currency": "EUR"},
        },
    )
    await _call(s, "POST", f"{api}/offers/publish", seller, {"offerId": offer["id"]})
    order = await _call(s, "POST", f"{api}/orders", buyer, {"offerId": offer["id"]})
    await _call(s, "POST", f"{api}/orders/{order['id']}/pay", buyer)
    return str(order["id"])


@pytest.mark.postgres
async def test_g2a_order_survives_a_crash_between_create_and_pay() -> None:
    simulator = await start_simulator(
        SimulatorConfig(faults=FaultConfig(latency_s=3.0, path_prefix="/v1/order/pay"))
    )
    try:
        async with scratch_postgres() as url:
            await _crash_and_resume(simulator, server_env(url, **g2a_env(simulator.url)))
    finally:
        await simulator.stop()


async def _crash_and_resume(simulator: RunningSimulator, env: dict[str, str]) -> None:
    autokey("migrate", env=env)
    seller, buyer = token("seller", env), token("buyer", env)
    async with aiohttp.ClientSession() as s:
        async with serve_process(env) as (api, process):
            order_id = await _paid_g2a_order(s, api, seller, buyer)
            hanging = asyncio.create_task(
                _call(s, "POST", f"{api}/orders/{order_id}/fulfill", buyer, expect=(200, 202))
            )
            for _ in range(100):  # until autokey has recorded the G2A order: then it pays
                order = await _call(s, "GET", f"{api}/orders/{order_id}", buyer)
                if order["upstreamState"] == "created":
                    break
                await asyncio.sleep(0.05)
            assert len(simulator.state.orders) == 1  # created, now stuck in pay
            process.kill()  # SIGKILL: no cleanup, no graceful shutdown
            await process.wait()
            hanging.cancel()
        simulator.state.faults = FaultConfig()
        async with serve_process(env) as (api, _):
            done = await _call(s, "POST", f"{api}/orders/{order_id}/fulfill", buyer)
            again = await _call(s, "GET", f"{api}/orders/{order_id}", buyer)
    assert done["status"] == "FULFILLED"
    assert len(simulator.state.orders) == 1, "a second G2A order was created"
    upstream = next(iter(simulator.state.orders.values()))
    assert done["upstreamOrderId"] == upstream.order_id
    assert upstream.paid_at is not None
    assert upstream.key_downloaded
    assert done["keys"] == again["keys"]
    assert len(done["keys"]) == 1


async def test_a_delayed_key_arrives_through_the_webhook_and_the_resumer(tmp_path: Path) -> None:
    simulator = await start_simulator(SimulatorConfig(key_ready_delay_s=1.5))
    try:
        env = with_metrics(server_env(f"sqlite:///{tmp_path / 'g2a.db'}", **g2a_env(simulator.url)))
        autokey("migrate", env=env)
        seller, buyer = token("seller", env), token("buyer", env)
        async with aiohttp.ClientSession() as s, serve_process(env) as (api, _):
            order_id = await _paid_g2a_order(s, api, seller, buyer)
            first = await _call(s, "POST", f"{api}/orders/{order_id}/fulfill", buyer, expect=(202,))
            assert (first["status"], first["upstreamState"]) == ("FULFILLING", "paid")
            assert first["keys"] is None
            for _ in range(60):  # no more fulfill calls: the background resumer finishes it
                order = await _call(s, "GET", f"{api}/orders/{order_id}", buyer)
                if order["status"] == "FULFILLED":
                    break
                await asyncio.sleep(0.1)
            async with s.get(metrics_url(env)) as response:
                metrics = await response.text()
        for series in (
            "g2a_request_duration_seconds_count",
            "g2a_token_fetches_total",
            'autokey_order_transitions_total{transition="paid"} 1.0',
        ):
            assert series in metrics
        assert order["status"] == "FULFILLED"
        assert len(order["keys"]) == 1
        assert len(simulator.state.orders) == 1
    finally:
        await simulator.stop()


def test_autokey_smoke_passes_against_the_simulator() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "autokey", "smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "AUTOKEY_LOG_FORMAT": "json"},
    )
    logs.keep("autokey-smoke", done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke: passed (7 steps)" in done.stdout
    assert done.stdout.count(" ok ") == 7


async def test_live_mode_refuses_to_start_when_g2a_rejects_the_credentials(
    tmp_path: Path,
) -> None:
    simulator = await start_simulator(SimulatorConfig())
    try:
        env = server_env(
            f"sqlite:///{tmp_path / 'live.db'}",
            **{**g2a_env(simulator.url), "G2A_ENV": "live", "G2A_API_HASH": "not-the-secret"},
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "autokey",
            "serve",
            "--port",
            "0",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        logs.keep("autokey-serve-live", stderr.decode())
        assert process.returncode != 0
        assert b"UpstreamAuthError" in stderr
        assert b"not-the-secret" not in stderr
        assert simulator.state.token_fetches == 0 or simulator.state.requests >= 1
    finally:
        await simulator.stop()


@pytest.mark.postgres
async def test_an_order_g2a_refuses_is_canceled_not_left_fulfilling() -> None:
    simulator = await start_simulator(SimulatorConfig())
    try:
        async with scratch_postgres() as url:
            env = server_env(url, **g2a_env(simulator.url))
            autokey("migrate", env=env)
            seller, buyer = token("seller", env), token("buyer", env)
            async with aiohttp.ClientSession() as s, serve_process(env) as (api, _):
                order_id = await _paid_g2a_order(s, api, seller, buyer, max_price="1.00")
                order = await _call(s, "POST", f"{api}/orders/{order_id}/fulfill", buyer)
                again = await _call(s, "POST", f"{api}/orders/{order_id}/cancel", buyer)
        assert (order["status"], order["cancelReason"]) == ("CANCELED", "upstream_failed")
        assert order["upstreamState"] == "failed"
        assert again["status"] == "CANCELED"
        assert simulator.state.orders == {}
    finally:
        await simulator.stop()


def test_smoke_refuses_live_without_the_flag() -> None:
    live = {
        "PATH": "/usr/bin:/bin",
        "G2A_ENV": "live",
        "G2A_API_URL": "https://api.g2a.com",
        "G2A_API_KEY": "id",
        "G2A_API_HASH": "secret",
        "G2A_EMAIL": "a@b.c",
        "ENCRYPTION_KEY": "ef" * 32,
    }
    done = subprocess.run(
        [sys.executable, "-m", "autokey", "smoke"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=live,
    )
    assert done.returncode == 1
    assert "G2A_ENV=live needs --live" in done.stdout
    assert "secret" not in done.stdout + done.stderr
