"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web
from dependency_injector import providers

from autokey.domain.model.errors import AutokeyError
from autokey.domain.model.marketplace import MarketplaceEnvironment
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
    webhooks,
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
    app.add_routes(webhooks.routes)
    app.add_routes(console.routes)
    return app


async def every(interval_s: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
    """Run `job` every `interval_s` until cancelled; a failing run is logged, never fatal."""
    while True:
        try:
            await job()
        except AutokeyError as error:
            log.warning("app.background_job_failed", job=name, error=type(error).__name__)
        await asyncio.sleep(interval_s)


async def _housekeeping(container: Container) -> None:
    if expired := await container.orders().sweep_expired():
        log.info("orders.expired_swept", count=expired)
        container.domain_metrics().order_transition("expired", expired)
    await container.idempotency().purge()
    await container.webhooks().prune_nonces()


def build_container(settings: Settings, store: object) -> Container:
    return Container(settings=settings, store=store, master_keys=bootstrap.master_keys(settings))


def serve_app(settings: Settings, *, background_jobs: bool = True) -> web.Application:
    """The production app: opens (and on the embedded default, migrates) the store on start,
    the outbound G2A session and Redis when configured, and runs the background jobs (unless
    told not to: `serve --workers` runs them in one worker)."""
    container = Container(settings=settings)
    app = make_app(container)

    async def resources(_app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            store = await bootstrap.open_store(settings)
            stack.push_async_callback(store.close)
            if settings.database.kind is not StoreKind.POSTGRES:
                await store.migrate()
            session, redis = await stack.enter_async_context(bootstrap.outbound(settings))
            container.store.override(store)
            container.master_keys.override(bootstrap.master_keys(settings))
            container.http_session.override(session)
            container.redis.override(redis)
            if redis is not None:
                container.redis_ping.override(providers.Object(redis.ping))
            marketplace = container.marketplace()
            if marketplace is not None and settings.g2a is not None:
                container.g2a_probe.override(providers.Object(marketplace.probe_token))
                container.g2a_environment.override(providers.Object(settings.g2a.env.value))
                if settings.g2a.env is MarketplaceEnvironment.LIVE:
                    await marketplace.probe_token()  # refuse to start on bad live credentials
            jobs: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("housekeeping", lambda: _housekeeping(container))
            ]
            if marketplace is not None:
                jobs.append(("g2a_resume", container.sourcing().resume))
            tasks = [
                asyncio.create_task(every(settings.sweep_interval_s, name, job))
                for name, job in (jobs if background_jobs else [])
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    app.cleanup_ctx.append(resources)
    return app
