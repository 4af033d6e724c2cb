"""Running the real aiohttp app in-process for handler tests."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from autokey.domain.model.auth import Role
from autokey.entrypoints.bootstrap import unlock
from autokey.entrypoints.container import Container
from autokey.entrypoints.logconfig import configure_logging
from autokey.entrypoints.settings import load_settings
from autokey.entrypoints.web.app import make_app, make_metrics_app
from autokey.entrypoints.web.openapi import operations
from autokey.entrypoints.web.operations import Operation
from autokey.entrypoints.web.runner import ProblemAppRunner
from autokey.ports.store import Store
from tests import logs
from tests.conftest import MASTER_KEY


class ServedApp(TestServer):
    """aiohttp's TestServer, run as `autokey serve` runs an app: ProblemAppRunner, and no
    aiohttp access log (the app writes its own request line)."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return ProblemAppRunner(self.app, access_log=None, **kwargs)


class Api:
    """A test client that knows how to mint tokens; `metrics` is a client of the metrics
    listener's app over the same container."""

    def __init__(
        self, client: TestClient[Any, Any], metrics: TestClient[Any, Any], container: Container
    ) -> None:
        self.client, self.metrics, self.container = client, metrics, container

    async def token(self, role: Role = Role.SELLER) -> dict[str, str]:
        secret, token = await self.container.auth().issue_token(role)
        return {"Authorization": f"Bearer {secret}", "X-Subject": str(token.subject)}

    async def stocked_offer(
        self, seller: dict[str, str], keys: list[str], g2a_product_id: str | None = None
    ) -> tuple[str, str]:
        """A new pool holding `keys` and a published AUTO_KEY offer on it (sold on G2A as
        `g2a_product_id` when given): (pool, offer) ids."""
        post = self.client.post
        logs.register(*keys)
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
    await unlock(container)
    async with (
        TestClient(ServedApp(make_app(container))) as client,
        TestClient(ServedApp(make_metrics_app(container))) as metrics,
    ):
        yield Api(client, metrics, container)


@asynccontextmanager
async def captured_logs() -> AsyncIterator[io.StringIO]:
    """Every log line written while the block runs, rendered as in production (JSON); they go
    to the whole-suite log check (tests/logs.py) as well."""
    buffer = io.StringIO()
    configure_logging("debug", "json", stream=buffer)
    try:
        yield buffer
    finally:
        logs.resume()
        logs.keep("captured", buffer.getvalue())


async def assert_limited(response: ClientResponse, limit: str, window_s: int = 60) -> None:
    """`response` is a 429 rate_limited problem for `limit`, with a sensible Retry-After."""
    assert response.status == 429
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert (body["code"], body["limit"]) == ("rate_limited", limit)
    assert 1 <= int(response.headers["Retry-After"]) <= window_s


def route_keys(router: web.UrlDispatcher) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route of the router, HEAD excluded."""
    routed = (r for r in router.routes() if r.method != "HEAD" and r.resource is not None)
    return {(r.method, r.resource.canonical) for r in routed if r.resource is not None}


def documented_operations() -> dict[tuple[str, str], Operation]:
    """(METHOD, path) -> Operation of every route the app documents, read from the router of
    an app that is built but never started."""
    settings = load_settings({"AUTOKEY_DATABASE_URL": "memory://"})
    return operations(make_app(Container(settings=settings)).router)
