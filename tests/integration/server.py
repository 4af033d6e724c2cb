"""Real `autokey serve` processes for end-to-end tests."""

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
        AUTOKEY_LOG_LEVEL="warning",
        **extra,
    )
    return env


def autokey(*args: str, env: Mapping[str, str]) -> str:
    """Run an autokey CLI command to completion; its stdout."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "autokey", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
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
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(150):
                if process.returncode is not None:
                    assert process.stderr is not None
                    raise RuntimeError(f"autokey serve exited: {await process.stderr.read()!r}")
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
