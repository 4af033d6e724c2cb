"""`autokey serve --workers N`: one port, N processes, restarted when they die, all stopped
by one SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.integration.server import autokey, metrics_url, serve_process, server_env, with_metrics
from tests.services import scratch_postgres


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def _until(check: object, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the awaited state never came")


async def _unmatched_gets(session: aiohttp.ClientSession, env: dict[str, str]) -> float:
    """GETs of unknown paths counted by /metrics."""
    async with session.get(metrics_url(env)) as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith("http_server_request_duration_seconds_count{") and all(
            label in line for label in ('method="GET"', 'route="unmatched"', 'status_class="4xx"')
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_several_workers_on_memory_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "autokey", "serve", "--workers", "2"],
        env=server_env("memory://"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--workers must be 1 or more, and 1 on memory://" in done.stderr


@pytest.mark.postgres
async def test_a_killed_worker_is_restarted_and_sigterm_stops_all_with_exit_0() -> None:
    async with scratch_postgres() as url:
        env = server_env(url)
        autokey("migrate", env=env)
        async with (
            serve_process(env, "--workers", "2") as (api, process),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        ):
            await _until(lambda: len(_children(process.pid)) == 2)
            first = _children(process.pid)
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            await _until(lambda: len(_children(process.pid) - first) == 1)
            workers = _children(process.pid)
            assert victim not in workers
            assert len(workers) == 2
            for _ in range(20):  # every connection is answered, by whichever worker
                async with session.get(f"{api}/health") as r:
                    assert r.status == 200
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), timeout=40) == 0
    assert not [pid for pid in workers if _alive(pid)], "a worker outlived its supervisor"


@pytest.mark.postgres
async def test_a_kill_9_of_the_supervisor_leaves_no_worker() -> None:
    async with scratch_postgres() as url:
        env = server_env(url)
        autokey("migrate", env=env)
        async with serve_process(env, "--workers", "2") as (_api, process):
            await _until(lambda: len(_children(process.pid)) == 2)
            workers = _children(process.pid)
            process.kill()
            await process.wait()
            await _until(lambda: not [pid for pid in workers if _alive(pid)])


@pytest.mark.postgres
async def test_metrics_count_the_requests_of_every_worker_and_of_restarted_ones() -> None:
    async with scratch_postgres() as url:
        env = with_metrics(server_env(url))
        autokey("migrate", env=env)
        async with (
            serve_process(env, "--workers", "2") as (api, process),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        ):
            await _until(lambda: len(_children(process.pid)) == 2)

            async def unknown_pages(n: int) -> None:
                # A connection each: both workers accept some of them.
                for _ in range(n):
                    async with session.get(f"{api}/no-such-page") as r:
                        assert r.status == 404

            await unknown_pages(40)
            assert await _unmatched_gets(session, env) == 40
            first = _children(process.pid)
            os.kill(max(first), signal.SIGKILL)  # not worker 0, which serves /metrics
            await _until(lambda: len(_children(process.pid) - first) == 1)
            await unknown_pages(10)
            assert await _unmatched_gets(session, env) == 50  # the dead worker's count stays
