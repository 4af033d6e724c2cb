"""Shared plumbing for the benchmarks: a scratch PostgreSQL database, real `autokey serve`
processes, the CLI, and CPU/memory accounting read from /proc (no extra dependencies)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import psycopg

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ENCRYPTION_KEY = "ab" * 32
_TICK = os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A uniquely named database, dropped afterwards (even after a failure)."""
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
        ENCRYPTION_KEY=ENCRYPTION_KEY,
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
        timeout=120,
    )
    return done.stdout


def token(role: str, env: dict[str, str]) -> str:
    return str(json.loads(cli("token", "create", "--role", role, env=env))["token"])


WORKERS = os.environ.get("BENCH_WORKERS", "")
"""`autokey serve --workers`: a count such as 1, or unset for autokey's default (one worker
per CPU on PostgreSQL)."""


@asynccontextmanager
async def server(env: dict[str, str], workers: str = WORKERS) -> AsyncIterator[tuple[str, int]]:
    """`autokey serve [--workers N]` on a free loopback port; yields (base URL, pid). With
    several workers the pid is their supervisor's: see `process_tree`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autokey",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(["--workers", workers] if workers else []),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                if process.returncode is not None:
                    raise RuntimeError(f"autokey serve exited with {process.returncode}")
                try:
                    async with session.get(f"{base}/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("autokey serve did not become healthy")
        yield base, process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


def process_tree(pid: int) -> list[int]:
    """`pid` and its child processes (the workers of `autokey serve --workers N`)."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [pid, *map(int, children.read().split())]


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def peak_rss_mib(pid: int) -> float:
    """The process's high-water resident set size (VmHWM) so far."""
    return _status_kib(pid, "VmHWM:") / 1024


def rss_mib(pid: int) -> float:
    """The process's current resident set size (VmRSS)."""
    return _status_kib(pid, "VmRSS:") / 1024


def _process_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _postgres_pids() -> Iterable[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/comm") as comm:
                    if comm.read().strip() == "postgres":
                        yield int(entry.name)
            except OSError:
                continue


def _machine_busy_s() -> float:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK


class CpuMeter:
    """CPU seconds spent between start() and stop(), split by who spent them.

    server: the autokey serve processes; client: this Python process (the load generator);
    children: finished child processes (pgbench); postgres: every process named postgres
    alive at both ends (backends that exit in between are only in `machine`);
    machine: all busy CPU time of the host.
    """

    def __init__(self, server_pids: Iterable[int] = ()) -> None:
        self._servers = list(server_pids)

    def _sample(self) -> dict[str, Any]:
        self_usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "wall": time.perf_counter(),
            "server": sum(_process_cpu_s(p) for p in self._servers),
            "client": self_usage.ru_utime + self_usage.ru_stime,
            "children": children.ru_utime + children.ru_stime,
            "postgres": {p: _process_cpu_s(p) for p in _postgres_pids()},
            "machine": _machine_busy_s(),
        }

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        """Cores used on average by each party over the measured interval."""
        end, start = self._sample(), self._start
        wall = end["wall"] - start["wall"]
        postgres = sum(
            cpu - start["postgres"][p]
            for p, cpu in end["postgres"].items()
            if p in start["postgres"]
        )
        cores = {k: (end[k] - start[k]) / wall for k in ("server", "client", "children", "machine")}
        cores["postgres"] = postgres / wall
        return cores
