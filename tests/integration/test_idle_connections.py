"""`autokey serve` closes idle and slow-header connections after its keep-alive bound, so
1,000 sockets that never finish a request cannot pin the server's file descriptors."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.server import serve, server_env

pytestmark = pytest.mark.slow

BOUND_S = 2
IDLE, SLOW = 500, 500
MARGIN_S = 20.0  # a loaded 2-core machine accepting 1,000 sockets at once


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]


async def _open(port: int) -> Connection:
    for _ in range(50):
        try:
            return (*await asyncio.open_connection("127.0.0.1", port), time.monotonic())
        except OSError:  # the listen backlog overflowed for a moment
            await asyncio.sleep(0.05)
    raise AssertionError("could not connect")


async def _closed_after(connection: Connection, trickle: bool) -> float:
    """Seconds from connecting until the server closed the connection; a slow client keeps
    sending header lines (never the blank line that ends them) every 0.3 s meanwhile."""
    reader, writer, started = connection
    if trickle:
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        async with asyncio.timeout(BOUND_S + MARGIN_S):
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(1024), 0.3)
                except TimeoutError:
                    if trickle:
                        writer.write(b"X-Slow: still-typing\r\n")
                    continue
                if not data:
                    return time.monotonic() - started
                raise AssertionError(f"unexpected response bytes: {data[:80]!r}")
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.close()


async def test_idle_and_slow_header_connections_are_closed_after_the_bound() -> None:
    env = server_env("memory://", AUTOKEY_HTTP_KEEPALIVE_TIMEOUT_S=str(BOUND_S))
    async with serve(env) as base:
        port = int(base.rsplit(":", 1)[1])
        sockets = [await _open(port) for _ in range(IDLE + SLOW)]
        waits = await asyncio.gather(
            *(_closed_after(c, trickle=i >= IDLE) for i, c in enumerate(sockets))
        )
    assert len(waits) == IDLE + SLOW
    # Closed by the bound, not by the client giving up (that would raise TimeoutError).
    assert max(waits) < BOUND_S + MARGIN_S
    # And not before it: a connection gets its full keep-alive time.
    assert min(waits) >= BOUND_S - 1.0, min(waits)
