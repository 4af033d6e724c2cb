"""Serving the apps: the public API and, on its own (loopback) address, /metrics.

Requests that aiohttp's HTTP parser rejects (a control character in a header, a header over
8,190 bytes, a malformed request line) never reach a middleware: aiohttp answers them from
`RequestHandler.handle_error` with a text/plain body that quotes the offending bytes (an
Authorization header included) and logs a traceback that quotes them again. aiohttp has no
hook for that response (aio-libs/aiohttp#3287), so `ProblemRequestHandler` overrides
`handle_error` and `ProblemAppRunner` makes the server use it (ADR 0014). The raw-socket tests
in tests/integration/test_exposure.py fail if an aiohttp upgrade bypasses it.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import signal
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

import attrs
import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from autokey.entrypoints.web.problems import INTERNAL, MALFORMED_REQUEST, problem_response

SERVER_NAME = "autokey"
"""The `Server` header of every response: no product versions for a scanner to match."""
NOT_CACHEABLE = "no-store"
YOUNG_GC_THRESHOLD: Final = 10_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""
log = structlog.get_logger("autokey.http")


async def response_defaults(_request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook of every app: no versions in `Server`, and nothing is
    cacheable unless its handler says so (order bodies carry key plaintexts)."""
    response.headers["Server"] = SERVER_NAME
    response.headers.setdefault("Cache-Control", NOT_CACHEABLE)


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering its own errors as problem+json."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # `message` and the exception's text quote the raw request: neither is used.
        if request.writer.output_size > 0:  # as aiohttp: too late for another response
            raise ConnectionError("response already started, cannot send an error")
        if status < 500:
            kind = attrs.evolve(MALFORMED_REQUEST, status=status)
            log.info("http.malformed_request", status=status, error=type(exc).__name__)
        else:
            kind = attrs.evolve(INTERNAL, status=status)
            log.error("http.unhandled_error", status=status, exc_info=exc)
        response = problem_response(
            kind, headers={"Server": SERVER_NAME, "Cache-Control": NOT_CACHEABLE}
        )
        response.force_close()
        return response


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        # Server.__call__ with our handler class; _loop and _kwargs are what it passes too.
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """An AppRunner whose connections are handled by `ProblemRequestHandler`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _ProblemServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            **server._kwargs,
        )


Listener = tuple[web.Application, str, int] | tuple[web.Application, socket.socket]
"""An app and where it listens: a (host, port) to bind, or a socket bound already (the one
`serve --workers` shares between its processes)."""


class AddressInUse(Exception):
    """A listener's address is taken (another server, or another autokey)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"{host}:{port}")
        self.host, self.port = host, port


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) for several processes to accept on."""
    try:
        return socket.create_server((host, port), backlog=1024)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(host, port) from exc
        raise


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` (`serve`) to completion on uvloop's event loop, or on asyncio's where
    uvloop is not installed (ADR 0031: it cut the server's CPU per order by about 10 %)."""
    with asyncio.Runner(loop_factory=_uvloop_factory()) as loop_runner:
        loop_runner.run(main)


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # optional: not built for every platform
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve(
    listeners: Sequence[Listener],
    *,
    stop_on: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
    **runner_args: Any,
) -> None:
    """Serve each listener's app until one of `stop_on` arrives. Apps start in order and stop
    in reverse: the first app's cleanup_ctx may open resources the later ones use."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in stop_on:
        loop.add_signal_handler(signum, stop.set)
    runners: list[web.AppRunner] = []
    try:
        for listener in listeners:
            runner = ProblemAppRunner(listener[0], access_log=None, **runner_args)
            await runner.setup()
            runners.append(runner)
            site = await _start_site(runner, listener)
            log.info("http.listening", at=site.name)
        settle_garbage_collector()
        await stop.wait()
    finally:
        for started in reversed(runners):
            await started.cleanup()


def settle_garbage_collector() -> None:
    """Once the apps are up (ADR 0037): what startup built lives as long as the process, so
    it is frozen out of the collector's walks, and the youngest generation is collected every
    `YOUNG_GC_THRESHOLD` allocations. With CPython's defaults, a full collection walked the
    startup objects about once a second under load and paused the loop for 30-55 ms."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, oldest)


async def _start_site(runner: web.AppRunner, listener: Listener) -> web.BaseSite:
    if len(listener) == 2:
        shared = web.SockSite(runner, listener[1])
        await shared.start()
        return shared
    _app, host, port = listener
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(host, port) from exc
        raise
    return site
