"""Helpers shared by the G2A integration tests (imported by plain name: no packages)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp

from autokey.adapters.g2a.client import G2AMarketplaceClient
from autokey.adapters.g2a.config import G2AConfig, TokenFlow
from autokey.adapters.g2a.simulator import RunningSimulator
from autokey.domain.model.marketplace import MarketplaceEnvironment

CLIENT_ID = "it-client-7f3a"
CLIENT_SECRET = "it-secret-4b9d-5c1e-very-private"
EMAIL = "it-seller@example.test"

ClientFactory = Callable[..., G2AMarketplaceClient]


def redis_url() -> str:
    return os.environ.get("AUTOKEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class FakeClock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def g2a_config(
    url: str,
    *,
    flow: TokenFlow = TokenFlow.OAUTH2,
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
    email: str = EMAIL,
    timeout_s: float = 5.0,
    export_base_url: str | None = None,
) -> G2AConfig:
    return G2AConfig(
        env=MarketplaceEnvironment.SANDBOX,
        export_base_url=export_base_url or f"{url}/v1",
        import_base_url=url,
        token_flow=flow,
        client_id=client_id,
        client_secret=client_secret,
        email=email,
        timeout_s=timeout_s,
    )


async def set_faults(
    simulator: RunningSimulator, session: aiohttp.ClientSession, **faults: object
) -> None:
    async with session.post(f"{simulator.url}/__admin/faults", json=faults) as resp:
        assert resp.status == 200
