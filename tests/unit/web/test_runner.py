"""The server's event loop (ADR 0031)."""

from __future__ import annotations

import asyncio

import uvloop

from autokey.entrypoints.web import runner


def test_the_server_runs_on_uvloop() -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    runner.run(main())
    assert len(seen) == 1
    assert isinstance(seen[0], uvloop.Loop)
    assert seen[0].is_closed()
