"""Running the real aiohttp app in-process for handler tests."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiohttp.test_utils import TestClient, TestServer

from autokey.domain.model.auth import Role
from autokey.entrypoints.container import Container
from autokey.entrypoints.logging import configure_logging
from autokey.entrypoints.settings import load_settings
from autokey.entrypoints.web.app import make_app
from autokey.ports.store import Store
from tests.conftest import MASTER_KEY


class Api:
    """A test client that knows how to mint tokens."""

    def __init__(self, client: TestClient[Any, Any], container: Container) -> None:
        self.client, self.container = client, container

    async def token(self, role: Role = Role.SELLER) -> dict[str, str]:
        secret, token = await self.container.auth().issue_token(role)
        return {"Authorization": f"Bearer {secret}", "X-Subject": str(token.subject)}

    async def stocked_offer(
        self, seller: dict[str, str], keys: list[str], g2a_product_id: str | None = None
    ) -> tuple[str, str]:
        """A new pool holding `keys` and a published AUTO_KEY offer on it (sold on G2A as
        `g2a_product_id` when given): (pool, offer) ids."""
        post = self.client.post
        pool = (await (await post("/key-pools", json={}, headers=seller)).json())["id"]
        if keys:
            upload = await post(
                f"/key-pools/{pool}/keys/upload", json={"keys": keys}, headers=seller
            )
            assert upload.status == 200, await upload.text()
        draft = {
            "title": "Game",
            "price": {"amount": "19.99", "currency": "EUR"},
            "deliveryType": "AUTO_KEY",
            "keyPoolId": pool,
            **({"g2aProductId": g2a_product_id} if g2a_product_id else {}),
        }
        offer = (await (await post("/offers/draft", json=draft, headers=seller)).json())["id"]
        published = await post("/offers/publish", json={"offerId": offer}, headers=seller)
        assert published.status == 200, await published.text()
        return pool, offer


@asynccontextmanager
async def running_api(
    store: Store, clock: Any = None, environ: dict[str, str] | None = None
) -> AsyncIterator[Api]:
    settings = load_settings({"AUTOKEY_DATABASE_URL": "memory://", **(environ or {})})
    container = Container(settings=settings, store=store, master_keys=(MASTER_KEY,))
    if clock is not None:
        container.clock.override(clock)
    async with TestClient(TestServer(make_app(container))) as client:
        yield Api(client, container)


@asynccontextmanager
async def captured_logs() -> AsyncIterator[io.StringIO]:
    """Every log line written while the block runs, rendered as in production (JSON)."""
    buffer = io.StringIO()
    configure_logging("debug", "json")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(buffer))
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
