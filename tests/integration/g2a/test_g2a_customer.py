"""The simulated G2A customer: the simulator's merchant journey against a real autokey, and
`autokey smoke --merchant` end to end (including its injected faults)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from uuid import UUID

import aiohttp
import pytest

from autokey.adapters.g2a.simulator import RunningSimulator
from autokey.adapters.memory.store import MemoryStore
from autokey.domain.model.auth import Role
from autokey.domain.model.ids import SubjectId
from tests.http import Api, running_api

PRODUCT = "10000068865001"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_api(MemoryStore()) as running:
        yield running


async def test_simulator_plays_g2a_against_a_merchant_server(
    api: Api, simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    seller = await api.token(Role.SELLER)
    await api.stocked_offer(seller, ["JOURNEY-0001-KEY", "JOURNEY-0002-KEY"], PRODUCT)
    secret, credential = await api.container.merchant().create_credentials(
        SubjectId(UUID(seller["X-Subject"]))
    )
    journey = {
        "base_url": str(api.client.make_url("/g2a/merchant")),
        "client_id": credential.client_id,
        "client_secret": secret,
        "product_id": int(PRODUCT),
        "quantity": 2,
    }
    async with session.post(f"{simulator.url}/__admin/merchant/journey", json=journey) as r:
        body = await r.json()
    assert r.status == 200, body
    assert [(s["step"], s["status"]) for s in body["steps"]] == [
        ("token", 200),
        ("healthcheck", 204),
        ("reserve", 200),
        ("order", 200),
        ("inventory", 200),
    ]
    assert body["steps"][-1]["keys"] == 2
    assert "JOURNEY" not in str(body)


async def test_simulator_refuses_a_merchant_server_off_loopback(
    simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    journey = {
        "base_url": "https://seller.example/g2a/merchant",
        "client_id": "x",
        "client_secret": "y",
        "product_id": int(PRODUCT),
    }
    async with session.post(f"{simulator.url}/__admin/merchant/journey", json=journey) as r:
        assert r.status == 400


def test_autokey_smoke_merchant_passes_with_its_faults() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOKEY_", "G2A_"))}
    done = subprocess.run(
        [sys.executable, "-m", "autokey", "smoke", "--merchant"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke --merchant: passed (11 steps)" in done.stdout
    for fault in ("duplicate POST /order", "DELETE racing an order", "renewal after expiry"):
        assert fault in done.stdout
    assert "SMOKE-" not in done.stdout  # key values are never printed
