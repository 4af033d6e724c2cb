"""Fixtures for G2A over real HTTP: the simulator on a random loopback port, clients built
against it, and real Redis (fails instead of skipping when AUTOKEY_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from autokey.adapters.g2a.client import G2AMarketplaceClient
from autokey.adapters.g2a.config import G2AConfig
from autokey.adapters.g2a.guard import CallGuard
from autokey.adapters.g2a.metrics import G2AMetrics
from autokey.adapters.g2a.retry import RetryPolicy
from autokey.adapters.g2a.simulator import RunningSimulator, SimulatorConfig, start_simulator
from autokey.adapters.memory.token_cache import MemoryTokenCache
from autokey.ports.marketplace import TokenCache
from tests.integration.g2a.g2a_it_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    EMAIL,
    ClientFactory,
    FakeClock,
    g2a_config,
)
from tests.services import real_redis


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    """Real Redis; skips when unreachable, or fails when AUTOKEY_REQUIRE_SERVICES=1."""
    async with real_redis() as client:
        yield client


@pytest.fixture
async def redis_prefix(redis_client: Redis) -> AsyncIterator[str]:
    """A key prefix unique to the test; its keys are deleted afterwards."""
    prefix = f"autokey-test:{uuid.uuid4().hex}:g2a:token:"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, email=EMAIL)


@pytest.fixture
async def simulator(sim_config: SimulatorConfig) -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(sim_config)
    yield running
    await running.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(
    simulator: RunningSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> ClientFactory:
    def build(
        *,
        config: G2AConfig | None = None,
        cache: TokenCache | None = None,
        policy: RetryPolicy | None = None,
        metrics: G2AMetrics | None = None,
        guard: CallGuard | None = None,
        **config_kw: object,
    ) -> G2AMarketplaceClient:
        return G2AMarketplaceClient(
            session=session,
            config=config or g2a_config(simulator.url, **config_kw),  # type: ignore[arg-type]
            token_cache=cache or MemoryTokenCache(),
            retry_policy=policy or RetryPolicy.no_wait(),
            metrics=metrics or G2AMetrics(CollectorRegistry()),
            clock=clock,
            guard=guard,
        )

    return build
