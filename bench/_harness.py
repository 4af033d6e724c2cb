"""Shared plumbing for the benchmarks: a scratch PostgreSQL database, real `autokey serve`
processes, the CLI, and CPU/memory accounting read from /proc (no extra dependencies)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import psycopg

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ENCRYPTION_KEY = "ab" * 32
_TICK = os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def scratch_database(admin_url: str = ADMIN_URL) -> AsyncIterator[str]:
    """A uniquely named database on the server of `admin_url`, dropped afterwards (even after
    a failure)."""
    name = f"autokey_bench_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


PRIVATE_PG = os.environ.get("BENCH_PRIVATE_PG", "auto")


def admin_server() -> contextlib.AbstractContextManager[str]:
    """The PostgreSQL server a benchmark runs on (its admin URL). BENCH_PRIVATE_PG=1: always
    a private instance (`private_postgres`); 0: always BENCH_POSTGRES_URL's server; auto (the
    default): a private one when that server has `autovacuum = off`.

    Production runs with autovacuum, and a benchmark must too: without it nothing analyses a
    table as it grows, so the plan a connection cached for a prepared statement while the
    table was small stays for good. Seen here: `orders` analysed while empty, then every
    batch's `FOR UPDATE` read and save scanning the whole table (7 ms each at 13,000 orders,
    docs/benchmarks.md), while pgbench, which prepares nothing, was planned afresh."""
    private = PRIVATE_PG == "1"
    if PRIVATE_PG == "auto":
        with psycopg.connect(ADMIN_URL) as db:
            private = db.execute("SHOW autovacuum").fetchone() == ("off",)
    return private_postgres() if private else contextlib.nullcontext(ADMIN_URL)


@asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    """A scratch database (`scratch_database`) on the server `admin_server` chooses."""
    with admin_server() as admin:
        async with scratch_database(admin) as url:
            yield url


async def analyze_filled(db: psycopg.AsyncConnection[Any]) -> None:
    """`VACUUM ANALYZE` each table that holds rows after a benchmark's setup, as autovacuum
    would, and leave an empty one (`orders` before the first order) unanalysed, as autovacuum
    does. An `ANALYZE` that finds `orders` empty gives each statement prepared on it during the
    next minute, until autovacuum analyses it again, a plan that scans the whole table: on
    the 1-client level of `orders_bench`, a lone order's locked read scanned 3,000 orders
    (117 µs per call instead of 12) (ADR 0038)."""
    tables = await db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    for (table,) in await tables.fetchall():
        filled = await db.execute(f'SELECT EXISTS (SELECT FROM "{table}")')
        if await filled.fetchone() == (True,):
            await db.execute(f'VACUUM ANALYZE "{table}"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_postgres() -> Iterator[str]:
    """A PostgreSQL instance of its own with stock settings (autovacuum on): `initdb` in a
    temporary directory, started on a free loopback port, stopped and removed afterwards
    (also after an error or Ctrl-C). Yields its admin URL. The newest server binaries under
    /usr/lib/postgresql are used; as root, they run as the `postgres` user (initdb refuses
    root). BENCH_PG_OPTIONS adds server options, e.g. "-c autovacuum_naptime=10s"."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not binaries:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = tempfile.mkdtemp(prefix="autokey_bench_pg_")
    data, port = f"{home}/data", free_port()
    if as_owner:
        shutil.chown(home, "postgres", "postgres")

    def run(*args: str) -> None:
        subprocess.run([*as_owner, *args], check=True, capture_output=True, timeout=120)

    try:
        run(f"{binaries[-1]}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
        options += f" {os.environ.get('BENCH_PG_OPTIONS', '')}"
        run(f"{binaries[-1]}/pg_ctl", "-D", data, "-l", f"{home}/log", "-o", options, "-w", "start")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(f"{binaries[-1]}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def environment(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOKEY_", "G2A_"))}
    env.update(
        AUTOKEY_DATABASE_URL=database_url,
        ENCRYPTION_KEY=ENCRYPTION_KEY,
        AUTOKEY_LOG_LEVEL="warning",
        AUTOKEY_LOG_FORMAT="json",
        AUTOKEY_METRICS_ADDR="",
        # One buyer places every order here: per-principal limits would throttle the run.
        AUTOKEY_RATE_LIMIT_UPLOADS="off",
        AUTOKEY_RATE_LIMIT_ORDERS="off",
        AUTOKEY_RATE_LIMIT_WRITES="off",
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
async def server(
    env: dict[str, str], workers: str = WORKERS, *, tokens: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, int]]:
    """`autokey serve [--workers N]` on a free loopback port; yields (base URL, pid). With
    several workers the pid is their supervisor's: see `process_tree`. On memory://, pass
    `tokens` to have it filled with the demo tokens the server prints (SELLER, BUYER)."""
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
        *(["--workers", workers] if workers else []),
        env=env,
        stdout=asyncio.subprocess.DEVNULL if tokens is None else asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    drain: asyncio.Future[None] | None = None
    try:
        while tokens is not None and len(tokens) < 2:
            assert process.stdout is not None
            if not (line := await process.stdout.readline()):
                raise RuntimeError("autokey serve printed no demo tokens")
            if match := re.match(rb"\s+(SELLER|BUYER)=(\S+)", line):
                tokens[match[1].decode()] = match[2].decode()
        if tokens is not None:  # keep reading, so that a full pipe never blocks the server
            drain = asyncio.ensure_future(_drain(process.stdout))
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
        if drain is not None:
            await drain


async def _drain(stream: asyncio.StreamReader | None) -> None:
    while stream is not None and await stream.read(65536):
        pass


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


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()


def _process_cpu_s(pid: int) -> float:
    try:
        fields = _stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def parent_pid(pid: int) -> int:
    return int(_stat(pid)[1])


def _postgres_pids(postmaster: int | None) -> Iterable[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/comm") as comm:
                    if comm.read().strip() != "postgres":
                        continue
                pid = int(entry.name)
                if postmaster is None or postmaster in (pid, parent_pid(pid)):
                    yield pid
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
    alive at both ends (backends that exit in between are only in `machine`), or only the
    `postmaster` given and its children; machine: all busy CPU time of the host.
    """

    def __init__(self, server_pids: Iterable[int] = (), postmaster: int | None = None) -> None:
        self._servers, self._postmaster = list(server_pids), postmaster

    def _sample(self) -> dict[str, Any]:
        self_usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "wall": time.perf_counter(),
            "server": sum(_process_cpu_s(p) for p in self._servers),
            "client": self_usage.ru_utime + self_usage.ru_stime,
            "children": children.ru_utime + children.ru_stime,
            "postgres": {p: _process_cpu_s(p) for p in _postgres_pids(self._postmaster)},
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


LOADGEN = os.environ.get("BENCH_LOADGEN", "aiohttp")


def native_loadgen() -> str:
    """bench/loadgen.c, built once per checkout into bench/.build (ignored by git)."""
    source = os.path.join(os.path.dirname(__file__), "loadgen.c")
    binary = os.path.join(os.path.dirname(__file__), ".build", "loadgen")
    if not os.path.exists(binary) or os.path.getmtime(binary) < os.path.getmtime(source):
        os.makedirs(os.path.dirname(binary), exist_ok=True)
        subprocess.run(["cc", "-O2", "-pthread", "-o", binary, source], check=True)
    return binary


async def native_flows(
    flow: str,
    apis: Sequence[str],
    pids: Sequence[int],
    token: str,
    target: str,
    clients: int,
    warmup: float,
    seconds: float,
    *extra: str,
) -> dict[str, Any]:
    """`flow` ("orders" or "merchant", see bench/loadgen.c) driven by the native load
    generator: flows per second, the cores each party used while it measured (its own as
    the client's), and p50/p99 per call."""
    ports = ",".join(api.rsplit(":", 1)[1] for api in apis)
    args = [flow, ports, token, target, str(clients), str(warmup), str(seconds), *extra]
    proc = await asyncio.create_subprocess_exec(
        native_loadgen(), *args, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    meter = CpuMeter(pids)
    if await proc.stdout.readline() != b"measuring\n":
        raise RuntimeError(f"loadgen failed (exit {await proc.wait()})")
    meter.start()
    line = await proc.stdout.readline()
    cores = meter.stop()
    if await proc.wait() != 0 or not line:
        raise RuntimeError(f"loadgen failed (exit {proc.returncode})")
    result = json.loads(line)
    cores["client"] = result.pop("cpu_s") / result["seconds"]
    return {"flows_s": result.pop("flows") / result.pop("seconds"), "cores": cores, **result}


STRACE = "/usr/bin/strace"


def count_round_trips(log: str, port: int = 5432) -> int:
    """Round trips to PostgreSQL (listening on `port`) in the file `log` written by
    `strace_command`: per database socket, every flight of sends not separated by a
    successful receive is one.
    (PostgreSQL answers a pipelined batch only at its Flush or Sync, so a flight is one
    wait for the server; one simple-protocol statement is one flight, as in pgbench.)"""
    last: dict[str, str] = {}
    flights = 0
    with open(log) as trace:
        lines = trace.read().splitlines()
    socket_call = re.compile(
        rf"^\d+\s+(sendto|recvfrom)\((\d+<TCP:\[[^\]]*:{port}\]>),.*\)\s+=\s+(-?\d+)"
    )
    for line in lines:
        match = socket_call.match(line)
        if match is None:
            continue
        call, sock, result = match[1], match[2], int(match[3])
        if call == "sendto":
            if last.get(sock) != "sendto":
                flights += 1
            last[sock] = "sendto"
        elif result > 0:
            last[sock] = "recvfrom"
    return flights


@asynccontextmanager
async def traced(pids: Sequence[int], port: int = 5432) -> AsyncIterator[list[int]]:
    """strace the running processes `pids` (a server and its workers) for the block; the list
    yielded holds the round trips to PostgreSQL (on `port`) counted once the block has ended."""
    with tempfile.TemporaryDirectory() as tmp:
        log = f"{tmp}/trace"
        tracer = await asyncio.create_subprocess_exec(
            *strace_command(log), *(arg for pid in pids for arg in ("-p", str(pid))),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.sleep(1.0)  # strace attaches to every thread before the block runs
        counted: list[int] = []
        try:
            yield counted
        finally:
            await asyncio.sleep(0.2)
            tracer.terminate()
            await tracer.wait()
            counted.append(await asyncio.to_thread(count_round_trips, log, port))


def strace_command(log: str) -> list[str]:
    """strace, writing every send and receive with its socket's addresses to `log`."""
    return [STRACE, "-f", "-qq", "-yy", "-s", "0", "-e", "trace=sendto,recvfrom", "-o", log]
