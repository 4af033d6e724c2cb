"""`/health/ready` follows PostgreSQL going away and coming back, without restarting autokey.

The shared PostgreSQL server must keep running for the other tests, so the outage is made by a
loopback TCP proxy between autokey and the server: closing the proxy drops every connection
and refuses new ones, exactly what autokey sees when its database stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from autokey.entrypoints.container import Container
from autokey.entrypoints.settings import load_settings
from autokey.entrypoints.web.app import make_app
from tests.conftest import MASTER_KEY
from tests.proxy import TcpProxy, in_front_of
from tests.services import scratch_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture
async def proxied_url() -> AsyncIterator[tuple[str, TcpProxy]]:
    async with scratch_postgres() as url, in_front_of(url) as proxied:
        yield proxied


async def _ready(client: TestClient[object, object]) -> tuple[int, dict[str, object]]:
    response = await client.get("/health/ready")
    return response.status, await response.json()


async def test_ready_turns_503_while_postgres_is_unreachable_and_recovers(
    proxied_url: tuple[str, TcpProxy],
) -> None:
    from autokey.adapters.postgres.store import PostgresStore

    url, proxy = proxied_url
    store = await PostgresStore.open(
        url, min_size=1, max_size=4, timeout_s=2.0, connect_timeout_s=2
    )
    try:
        await store.migrate()
        # The store is handed in already open; settings only need to load.
        settings = load_settings({"AUTOKEY_DATABASE_URL": "memory://"})
        container = Container(settings=settings, store=store, master_keys=(MASTER_KEY,))
        async with TestClient(TestServer(make_app(container))) as client:
            status, body = await _ready(client)
            assert (status, body["status"]) == (200, "ready"), body
            assert isinstance(body["schemaVersion"], int)
            assert body["schemaVersion"] >= 1

            await proxy.close()
            status, body = await _ready(client)
            assert (status, body["status"]) == (503, "unavailable"), body
            components = body["components"]
            assert isinstance(components, dict)
            assert components["database"]["status"] == "down"
            assert components["database"]["code"] in ("store_unavailable", "timeout")
            assert "password" not in str(body)
            assert (await client.get("/health")).status == 200  # liveness is unaffected

            await proxy.open()
            for _ in range(60):  # the pool reconnects in the background, with backoff
                status, body = await _ready(client)
                if status == 200:
                    break
                await asyncio.sleep(0.5)
            assert (status, body["status"]) == (200, "ready"), body
    finally:
        await store.close()
