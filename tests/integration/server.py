"""Real `autokey serve` processes for end-to-end tests. Whatever they log (stderr) goes to the
whole-suite log check (tests/logs.py)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp

from tests import logs

TEST_ENCRYPTION_KEY = "00" * 16 + "11" * 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOKEY_", "G2A_"))}
    env.update(
        AUTOKEY_DATABASE_URL=database_url,
        ENCRYPTION_KEY=TEST_ENCRYPTION_KEY,
        AUTOKEY_LOG_FORMAT="json",
        AUTOKEY_LOG_LEVEL="debug",  # every line autokey can write goes to the log check
        AUTOKEY_METRICS_ADDR="",  # off: servers of one test (and of parallel runs) share no port
        **extra,
    )
    return env


def with_metrics(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the metrics listener on a free loopback port (see `metrics_url`)."""
    return {**env, "AUTOKEY_METRICS_ADDR": f"127.0.0.1:{free_port()}"}


def metrics_url(env: Mapping[str, str]) -> str:
    return f"http://{env['AUTOKEY_METRICS_ADDR']}/metrics"


async def mean_batch_sizes(
    session: aiohttp.ClientSession, env: Mapping[str, str]
) -> dict[str, float]:
    """Per call, the mean calls per group-commit batch so far (ADR 0032), from /metrics."""
    async with session.get(metrics_url(env)) as r:
        text = await r.text()
    parts: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        for part in ("count", "sum"):
            prefix = f"autokey_group_commit_batch_size_{part}{{call="
            if line.startswith(prefix):
                call = line[len(prefix) :].split('"')[1]
                parts.setdefault(call, {})[part] = float(line.rsplit(" ", 1)[1])
    return {call: p["sum"] / p["count"] for call, p in parts.items() if p.get("count")}


def run_autokey(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run an autokey CLI command to completion, whatever its exit code; its stderr joins
    the whole-suite log check."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "autokey", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    logs.keep(f"autokey-{args[0]}", done.stderr)
    return done


def autokey(*args: str, env: Mapping[str, str]) -> str:
    """Run an autokey CLI command that must succeed; its stdout."""
    done = run_autokey(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def token(role: str, env: Mapping[str, str]) -> str:
    return str(json.loads(autokey("token", "create", "--role", role, env=env))["token"])


@asynccontextmanager
async def serve(env: Mapping[str, str], *args: str) -> AsyncIterator[str]:
    """Start `autokey serve [args]` on a free loopback port; yield its base URL; stop it after."""
    async with serve_process(env, *args) as (base, _process):
        yield base


@asynccontextmanager
async def serve_process(
    env: Mapping[str, str], *args: str
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Like `serve`, also yielding the process (a test may kill it)."""
    port = free_port()
    stderr_path = logs.child_log("serve")
    with stderr_path.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "autokey",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
            env=dict(env),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(150):
                if process.returncode is not None:
                    raise RuntimeError(f"autokey serve exited: {stderr_path.read_text()}")
                try:
                    async with session.get(f"{base}/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("autokey serve did not become healthy")
        yield base, process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def stocked_offer(
    session: aiohttp.ClientSession, api: str, seller: str, keys: list[str]
) -> tuple[str, str]:
    """A new pool holding `keys` (one text/plain upload) and a published offer on it:
    (pool id, offer id)."""
    auth = {"Authorization": f"Bearer {seller}"}
    async with session.post(f"{api}/key-pools", json={}, headers=auth) as r:
        pool = str((await r.json())["id"])
    async with session.post(
        f"{api}/key-pools/{pool}/keys/upload",
        data="\n".join(keys),
        headers={**auth, "Content-Type": "text/plain"},
    ) as r:
        assert (await r.json())["added"] == len(keys)
    draft = {
        "title": "Hot game",
        "price": {"amount": "1.00", "currency": "EUR"},
        "deliveryType": "AUTO_KEY",
        "keyPoolId": pool,
    }
    async with session.post(f"{api}/offers/draft", headers=auth, json=draft) as r:
        offer = str((await r.json())["id"])
    async with session.post(f"{api}/offers/publish", headers=auth, json={"offerId": offer}) as r:
        assert r.status == 200
    return pool, offer
