"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from autokey.domain.model.errors import AutokeyError
from autokey.entrypoints import bootstrap
from autokey.entrypoints.container import Container
from autokey.entrypoints.settings import Settings, StoreKind
from autokey.entrypoints.web import (
    console,
    docs,
    health,
    observability,
    offers,
    openapi,
    orders,
    pools,
)
from autokey.entrypoints.web.context import CONTAINER, CONVERTER
from autokey.entrypoints.web.problems import problem_middleware
from autokey.entrypoints.web.schemas import make_http_converter

MAX_JSON_BODY = 4 * 1024 * 1024
log = structlog.get_logger("autokey.app")


def make_app(container: Container) -> web.Application:
    """An app over an already-built container (tests pass one with a memory store)."""
    # observability first: the outermost middleware stamps request ids on every response.
    app = web.Application(
        middlewares=[observability.observability_middleware, problem_middleware],
        client_max_size=MAX_JSON_BODY,
    )
    app[CONTAINER] = container
    app[CONVERTER] = make_http_converter()
    app.add_routes(health.routes)
    app.add_routes(observability.routes)
    app.add_routes(openapi.routes)
    app.add_routes(docs.routes)
    app.add_routes(pools.routes)
    app.add_routes(offers.routes)
    app.add_routes(orders.routes)
    app.add_routes(console.routes)
    return app


async def sweep_forever(container: Container, interval_s: float) -> None:
    """Release expired reservations every `interval_s`; survives database outages."""
    orders, idempotency = container.orders(), container.idempotency()
    while True:
        try:
            if expired := await orders.sweep_expired():
                log.info("orders.expired_swept", count=expired)
            await idempotency.purge()
        except AutokeyError as error:
            log.warning("orders.sweep_failed", error=type(error).__name__)
        await asyncio.sleep(interval_s)


def build_container(settings: Settings, store: object) -> Container:
    return Container(settings=settings, store=store, master_keys=bootstrap.master_keys(settings))


def serve_app(settings: Settings) -> web.Application:
    """The production app: opens (and on the embedded default, migrates) the store on start."""
    container = Container(settings=settings)
    app = make_app(container)

    async def resources(_app: web.Application) -> AsyncIterator[None]:
        store = await bootstrap.open_store(settings)
        if settings.database.kind is not StoreKind.POSTGRES:
            await store.migrate()
        container.store.override(store)
        container.master_keys.override(bootstrap.master_keys(settings))
        sweeper = asyncio.create_task(sweep_forever(container, settings.sweep_interval_s))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await store.close()

    app.cleanup_ctx.append(resources)
    return app
