"""The server's event loop (ADR 0031) and garbage collector (ADR 0037)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Iterator

import pytest
import uvloop
from aiohttp import web

from autokey.entrypoints.web import runner


def test_the_server_runs_on_uvloop() -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    runner.run(main())
    assert len(seen) == 1
    assert isinstance(seen[0], uvloop.Loop)
    assert seen[0].is_closed()


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_once_serving_startup_objects_are_frozen_out_of_collections(
    collector_restored: None,
) -> None:
    """ADR 0037: what startup built is not walked again, and young collections are rarer."""
    seen: dict[str, int] = {}
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            seen["frozen"], seen["young"] = gc.get_freeze_count(), gc.get_threshold()[0]
            os.kill(os.getpid(), signal.SIGUSR1)

        loop.call_later(0.2, stop)
        await runner.serve([(web.Application(), "127.0.0.1", 0)], stop_on=(signal.SIGUSR1,))

    runner.run(main())
    assert seen["young"] == runner.YOUNG_GC_THRESHOLD > 700
    assert seen["frozen"] > 10_000  # the interpreter and autokey's modules, at least
