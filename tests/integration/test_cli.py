"""The command line as a person meets it: what it says, where it acts, how it fails."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import psycopg
import pytest

from autokey import __version__
from autokey.adapters.postgres.migrations import load_migrations
from tests.integration.server import autokey, free_port, serve, server_env, token
from tests.services import POSTGRES_URL, _with_database, scratch_postgres, unavailable

SHIPPED = load_migrations()[-1].version


def run(
    *args: str, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "autokey", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _spawn(*args: str, env: Mapping[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autokey",
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


def plain_lines(stderr: str) -> list[str]:
    """What the command said to a person: every line that is not a JSON log line."""
    return [line for line in stderr.splitlines() if not line.startswith("{")]


async def wait_until_listening(base: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(100):
            try:
                async with s.get(base):
                    return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listens at {base}")


def bare_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AUTOKEY_", "G2A_", "ENCRYPTION"))
    }
    env.update(AUTOKEY_LOG_FORMAT="json", **extra)
    return env


def test_version_is_printed() -> None:
    done = run("--version", env=bare_env())
    assert done.returncode == 0
    assert done.stdout.strip() == f"autokey {__version__}"


def test_top_level_help_lists_every_command_and_every_option_is_explained() -> None:
    from autokey.entrypoints.cli import _parser

    parser = _parser()
    top = run("--help", env=bare_env()).stdout
    subparsers = next(a for a in parser._actions if a.dest == "command")
    commands = dict(subparsers.choices)  # type: ignore[arg-type]
    for name in commands:
        assert name in top
    todo = list(commands.values())
    while todo:
        command = todo.pop()
        for action in command._actions:
            if action.choices and isinstance(action.choices, dict):
                todo.extend(action.choices.values())
            elif action.option_strings and action.dest != "help":
                assert action.help, f"{command.prog} {action.option_strings} has no help"


def test_token_create_refuses_a_directory_without_a_database(tmp_path: Path) -> None:
    done = run("token", "create", "--role", "seller", env=bare_env(), cwd=tmp_path)
    assert done.returncode == 3
    assert "no database at" in done.stderr
    assert str(tmp_path / "autokey.db") in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "autokey.db").exists()


def test_every_database_command_names_its_database_on_stderr(tmp_path: Path) -> None:
    env = bare_env()
    assert run("migrate", env=env, cwd=tmp_path).returncode == 0
    done = run("token", "create", "--role", "buyer", env=env, cwd=tmp_path)
    assert done.returncode == 0
    said = [json.loads(line) for line in done.stderr.splitlines()]
    announced = [line["database"] for line in said if line["event"] == "cli.database"]
    assert announced == [f"sqlite {tmp_path / 'autokey.db'}"]


def test_token_list_shows_metadata_and_last_use_but_never_a_secret(tmp_path: Path) -> None:
    env = server_env(f"sqlite:///{tmp_path / 'a.db'}", AUTOKEY_SWEEP_INTERVAL_S="1")
    autokey("migrate", env=env)
    created = json.loads(autokey("token", "create", "--role", "seller", "--name", "shop", env=env))
    unused = json.loads(autokey("token", "create", "--role", "buyer", env=env))
    listed = [json.loads(line) for line in autokey("token", "list", env=env).splitlines()]
    assert [t["id"] for t in listed] == [created["id"], unused["id"]]
    assert listed[0]["name"] == "shop"
    assert listed[0]["role"] == "seller"
    assert listed[0]["lastUsedAt"] is None
    assert all(created["token"] not in json.dumps(t) for t in listed)
    assert all(
        set(t) == {"id", "role", "subject", "name", "createdAt", "lastUsedAt", "revokedAt"}
        for t in listed
    )


async def test_token_list_reports_when_a_token_was_last_used(tmp_path: Path) -> None:
    env = server_env(f"sqlite:///{tmp_path / 'a.db'}", AUTOKEY_SWEEP_INTERVAL_S="1")
    autokey("migrate", env=env)
    seller = json.loads(autokey("token", "create", "--role", "seller", env=env))
    async with serve(env) as api, aiohttp.ClientSession() as s:
        auth = {"Authorization": f"Bearer {seller['token']}"}
        async with s.get(f"{api}/key-pools", headers=auth) as r:
            assert r.status == 200
        # housekeeping records the use within its interval (1 s here); poll the CLI
        for _ in range(50):
            listed = [json.loads(line) for line in autokey("token", "list", env=env).splitlines()]
            if listed[0]["lastUsedAt"] is not None:
                break
        assert listed[0]["lastUsedAt"] is not None


async def test_memory_demo_prints_tokens_that_the_server_accepts() -> None:
    port = free_port()
    env = bare_env(AUTOKEY_DATABASE_URL="memory://")
    process = await _spawn("serve", "--port", str(port), env=env)
    try:
        assert process.stdout is not None
        tokens: dict[str, str] = {}
        while len(tokens) < 2:
            line = (await process.stdout.readline()).decode()
            assert line, "serve exited before printing demo tokens"
            if match := re.fullmatch(r"\s+(SELLER|BUYER)=(\S+)\s*", line):
                tokens[match[1]] = match[2]
        base = f"http://127.0.0.1:{port}"
        await wait_until_listening(f"{base}/health")
        async with aiohttp.ClientSession() as s:
            async with s.post(
                f"{base}/key-pools",
                json={"name": "demo"},
                headers={"Authorization": f"Bearer {tokens['SELLER']}"},
            ) as r:
                assert r.status == 201
            async with s.get(
                f"{base}/orders", headers={"Authorization": f"Bearer {tokens['BUYER']}"}
            ) as r:
                assert r.status == 200
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=10)


def test_token_commands_on_memory_explain_instead_of_minting_a_useless_token() -> None:
    done = run(
        "token", "create", "--role", "seller", env=bare_env(AUTOKEY_DATABASE_URL="memory://")
    )
    assert done.returncode == 2
    assert "demo tokens" in done.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(
            "serve", "--port", str(port), env=bare_env(AUTOKEY_LOG_LEVEL="warning"), cwd=tmp_path
        )
    assert done.returncode == 4
    assert plain_lines(done.stderr) == [
        f"autokey: 127.0.0.1:{port} is already in use (another autokey serve?); "
        "choose another --port or AUTOKEY_METRICS_ADDR"
    ]


@pytest.mark.postgres
def test_production_serve_before_migrate_says_run_migrate() -> None:
    async def scenario() -> subprocess.CompletedProcess[str]:
        async with scratch_postgres() as url:
            env = server_env(url, AUTOKEY_ENV="production")
            return run("serve", "--port", str(free_port()), env=env)

    done = asyncio.run(scenario())
    assert done.returncode == 3
    assert plain_lines(done.stderr) == [
        f"autokey: the database schema is at version 0, this autokey needs {SHIPPED}: "
        "run `autokey migrate`"
    ]


@pytest.mark.postgres
def test_production_refuses_a_missing_database_in_one_line() -> None:
    name = f"autokey_missing_{uuid.uuid4().hex[:10]}"
    env = server_env(_with_database(POSTGRES_URL, name), AUTOKEY_ENV="production")
    done = run("serve", "--port", str(free_port()), env=env)
    assert done.returncode == 3
    assert plain_lines(done.stderr) == [
        f"autokey: database {name!r} does not exist (postgresql://postgres@127.0.0.1:5432/{name}); "
        "create it, then run `autokey migrate`"
    ]


@pytest.mark.postgres
async def test_one_variable_postgres_creates_migrates_and_serves(tmp_path: Path) -> None:
    name = f"autokey_fresh_{uuid.uuid4().hex[:10]}"
    env = bare_env(AUTOKEY_DATABASE_URL=_with_database(POSTGRES_URL, name))
    try:
        admin = await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", exc)
        raise
    async with admin:
        try:
            cwd_before = Path.cwd()
            os.chdir(tmp_path)  # the development key file lands in the working directory
            try:
                async with (
                    serve(env) as api,
                    aiohttp.ClientSession() as s,
                    s.get(f"{api}/health/ready") as r,
                ):
                    assert r.status == 200, await r.text()
            finally:
                os.chdir(cwd_before)
            assert (tmp_path / "autokey.key").exists()
            assert json.loads(
                run("token", "create", "--role", "seller", env=env, cwd=tmp_path).stdout
            )["token"]
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_smoke_prints_only_its_table_unless_verbose() -> None:
    done = run("smoke", env=bare_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines()[-1].startswith("smoke: passed")
    assert not any(line.startswith("{") for line in done.stdout.splitlines())
    verbose = run("smoke", "-v", env=bare_env(AUTOKEY_LOG_LEVEL="info"))
    assert verbose.returncode == 0
    assert any(json.loads(line).get("event") for line in verbose.stderr.splitlines())


async def test_g2a_sandbox_prints_credentials_it_accepts() -> None:
    port = free_port()
    process = await _spawn("g2a-sandbox", "--port", str(port), env=bare_env())
    try:
        assert process.stdout is not None
        printed: dict[str, str] = {}
        while "G2A_EMAIL" not in printed:
            line = (await process.stdout.readline()).decode()
            assert line, "g2a-sandbox exited early"
            if match := re.fullmatch(r"\s+export (G2A_\w+)=(\S+)\s*", line):
                printed[match[1]] = match[2]
        assert printed["G2A_API_URL"] == f"http://127.0.0.1:{port}/v1"
        await wait_until_listening(printed["G2A_API_URL"])
        async with aiohttp.ClientSession() as s:
            async with s.post(
                f"http://127.0.0.1:{port}/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": printed["G2A_API_KEY"],
                    "client_secret": printed["G2A_API_HASH"],
                },
            ) as r:
                assert r.status == 200
                assert (await r.json())["access_token"]
            async with s.post(
                f"http://127.0.0.1:{port}/oauth/token",
                data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
            ) as r:
                assert r.status == 401
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=10)


async def test_audit_export_writes_a_pools_log_as_csv(tmp_path: Path) -> None:
    env = server_env(f"sqlite:///{tmp_path / 'a.db'}")
    autokey("migrate", env=env)
    seller = token("seller", env)
    async with serve(env) as api, aiohttp.ClientSession() as s:
        auth = {"Authorization": f"Bearer {seller}"}
        async with s.post(f"{api}/key-pools", json={"name": "p"}, headers=auth) as r:
            pool = (await r.json())["id"]
        async with s.post(
            f"{api}/key-pools/{pool}/keys/upload", json={"keys": ["CSVKEY-12345"]}, headers=auth
        ) as r:
            assert r.status == 200
    exported = autokey("audit", "export", "--pool", pool, env=env)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["action"], r["poolId"]) for r in rows] == [("keys.uploaded", pool)]
    assert "CSVKEY-12345" not in exported
    later = autokey("audit", "export", "--pool", pool, "--since", "2999-01-01T00:00:00Z", env=env)
    assert later.splitlines() == ["id,occurredAt,action,actor,poolId,orderId,keyIds,details"]
    nowhere = str(uuid.uuid4())
    unknown = run("audit", "export", "--pool", nowhere, env=env)
    assert unknown.returncode == 1
    assert plain_lines(unknown.stderr) == [f"autokey: no key pool {nowhere}"]
