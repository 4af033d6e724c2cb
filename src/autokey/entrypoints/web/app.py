"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web

from autokey.adapters.webhook_sender import open_webhook_session
from autokey.domain.model.auth import Role
from autokey.domain.model.errors import AutokeyError
from autokey.domain.model.marketplace import MarketplaceEnvironment
from autokey.entrypoints import bootstrap
from autokey.entrypoints.container import Container
from autokey.entrypoints.settings import Settings, StoreKind
from autokey.entrypoints.web import (
    console,
    docs,
    g2a_seller,
    health,
    merchant,
    observability,
    offers,
    openapi,
    orders,
    pools,
    seller_webhooks,
    webhooks,
)
from autokey.entrypoints.web.bodies import HANDLER_ARGS, MAX_JSON_BODY
from autokey.entrypoints.web.context import CONTAINER, CONVERTER
from autokey.entrypoints.web.problems import problem_middleware
from autokey.entrypoints.web.runner import response_defaults
from autokey.entrypoints.web.schemas import make_http_converter, make_merchant_converter

DISPATCH_INTERVAL_S = 1.0
log = structlog.get_logger("autokey.app")


def make_app(container: Container) -> web.Application:
    """An app over an already-built container (tests pass one with a memory store).
    /metrics is not on it: see make_metrics_app."""
    # observability first: the outermost middleware stamps request ids on every response.
    app = web.Application(
        middlewares=[observability.observability_middleware, problem_middleware],
        client_max_size=MAX_JSON_BODY,
        handler_args=HANDLER_ARGS,
    )
    app[CONTAINER] = container
    app[CONVERTER] = make_http_converter()
    app[webhooks.G2A_CONVERTER] = make_merchant_converter()
    app.on_response_prepare.append(response_defaults)
    app.add_routes(health.routes)
    app.add_routes(openapi.routes)
    app.add_routes(docs.routes)
    app.add_routes(pools.routes)
    app.add_routes(offers.routes)
    app.add_routes(orders.routes)
    app.add_routes(webhooks.routes)
    app.add_routes(seller_webhooks.routes)
    app.add_routes(g2a_seller.routes)
    app.add_routes(console.routes)
    app.add_subapp(merchant.PREFIX, merchant.make_merchant_app(container))
    return app


def make_metrics_app(container: Container) -> web.Application:
    """The app of the metrics listener (AUTOKEY_METRICS_ADDR): /metrics and nothing else, kept
    off the public listener because it names every seller's pools."""
    app = web.Application(middlewares=[problem_middleware])
    app[CONTAINER] = container
    app.on_response_prepare.append(response_defaults)
    app.add_routes(observability.metrics_routes)
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
    await container.offers().sweep_stock_levels()
    await container.idempotency().purge()
    await container.webhooks().prune_nonces()
    await container.auth().flush_usage()
    await container.inventory().housekeeping()


async def _print_demo_tokens(container: Container) -> None:
    """memory:// keeps its tokens in this process only, so `autokey token create` cannot make
    one: the demo prints a seller and a buyer token instead."""
    auth = container.auth()
    seller, _ = await auth.issue_token(Role.SELLER, name="demo seller")
    buyer, _ = await auth.issue_token(Role.BUYER, name="demo buyer")
    print(
        "memory:// demo: nothing persists. Tokens for this run:\n"
        f"  SELLER={seller}\n  BUYER={buyer}",
        flush=True,
    )


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
            if bootstrap.auto_migrates(settings):
                await store.migrate()
            session, redis = await stack.enter_async_context(bootstrap.outbound(settings))
            hooks = open_webhook_session(
                allow_private=settings.webhook_allow_private,
                timeout_s=settings.webhook_timeout_s,
            )
            stack.push_async_callback(hooks.close)
            revocations = await stack.enter_async_context(bootstrap.revocation_watch(settings))
            container.store.override(store)
            container.master_keys.override(bootstrap.master_keys(settings))
            container.webhook_session.override(hooks)
            container.revocations.override(revocations)
            container.http_session.override(session)
            container.redis.override(redis)
            if redis is not None:
                container.redis_ping.override(redis.ping)
            await bootstrap.unlock(container)  # refuse to start on keys that do not fit
            if settings.database.kind is StoreKind.MEMORY:
                await _print_demo_tokens(container)
            marketplace = container.marketplace()
            if marketplace is not None and settings.g2a is not None:
                container.g2a_probe.override(marketplace.probe_token)
                container.g2a_circuit.override(container.g2a_guard().circuit_state)
                container.g2a_environment.override(settings.g2a.env.value)
                if settings.g2a.env is MarketplaceEnvironment.LIVE:
                    await marketplace.probe_token()  # refuse to start on bad live credentials
            jobs: list[tuple[str, float, Callable[[], Awaitable[object]]]] = [
                ("housekeeping", settings.sweep_interval_s, lambda: _housekeeping(container)),
                ("webhooks", DISPATCH_INTERVAL_S, container.seller_webhooks().dispatch_once),
            ]
            if marketplace is not None:
                jobs.append(("g2a_resume", settings.sweep_interval_s, container.sourcing().resume))
            if (sync := container.stock_sync()) is not None:
                jobs.append(("g2a_stock_sync", settings.g2a_stock_sync_interval_s, sync.run_once))
            tasks = [
                asyncio.create_task(every(interval_s, name, job))
                for name, interval_s, job in (jobs if background_jobs else [])
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    app.cleanup_ctx.append(resources)
    return app
