"""Shared plumbing for the benchmarks: a scratch PostgreSQL database and a real server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import psycopg

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    name = f"autokey_bench_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(ADMIN_URL, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def environment(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOKEY_", "G2A_"))}
    env.update(
        AUTOKEY_DATABASE_URL=database_url,
        ENCRYPTION_KEY="ab" * 32,
        AUTOKEY_LOG_LEVEL="warning",
        AUTOKEY_LOG_FORMAT="json",
        **extra,
    )
    return env


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "autokey", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def token(role: str, env: dict[str, str]) -> str:
    return str(json.loads(cli("token", "create", "--role", role, env=env))["token"])


@asynccontextmanager
async def server(env: dict[str, str]) -> AsyncIterator[tuple[str, int]]:
    """`autokey serve` on a free loopback port; yields (base URL, pid)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autokey", "serve", "--port", str(port), env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"{base}/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        yield base, process.pid
    finally:
        process.terminate()
        await process.wait()


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
